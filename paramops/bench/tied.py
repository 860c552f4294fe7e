"""Tied-gradient cases (--tied, --steps): the sum of K gradients of a tied weight.

tied cases, each in float32 and bfloat16, K source gradients per weight, every way on the
same tensors in the same run:
  emb2      K = 2, a tied embedding / LM head of 50257 x 768 (GPT-2);
  albert12  K = 12, ALBERT-like weights 1024x1024, 1024x4096, 4096x1024 (one layer used 12 times).
Ways: fused = paramops.tied_grads_ (all weights in one op call); pairwise = autograd's
pattern (the first add into the destination, then add_ in place, in the tensor's dtype);
stack = torch.stack(...).sum(0); foreach = torch._foreach_add_ over the weights.

step cases: a whole forward + backward of an ALBERT-like stack (the three weights above
used 12 times on STEP_TOKENS tokens), plain autograd against paramops.tie_gradients, holding
the gradients (the default) and with low_memory=True; three models with the same weights.
"""
import torch
from torch import nn

from .timing import _err, time_fns

TIED = {"emb2": (2, [(50257, 768)]), "albert12": (12, [(1024, 1024), (1024, 4096), (4096, 1024)])}
STEPS = ("albert12",)
TIED_DTYPES = (torch.float32, torch.bfloat16)
STEP_TOKENS = 16


class TiedCase:
    kind = "tied"

    def __init__(self, name, dtype, device="cpu"):
        self.name, self.dtype, self.device = name, dtype, device
        self.k, self.shapes = TIED[name]
        self.op = "tied_grad_"
        self.label = f"{name} (K={self.k})"

    def run(self, budget_s, repeat):
        import paramops

        row = {"kind": "tied", "device": self.device, "dtype": str(self.dtype)[6:], "case": self.name,
               "label": self.label, "op": self.op, "k": self.k}
        g = torch.Generator(device=self.device).manual_seed(0)
        srcs = [[torch.randn(s, generator=g, device=self.device).to(self.dtype) for _ in range(self.k)]
                for s in self.shapes]
        dests = [torch.empty(s, dtype=self.dtype, device=self.device) for s in self.shapes]
        numel = sum(d.numel() for d in dests)
        row["mb"] = numel * dests[0].element_size() / 2**20
        groups = list(zip(dests, srcs))

        def fused():
            paramops.tied_grads_(groups)

        def pairwise():
            for d, gs in groups:
                torch.add(gs[0], gs[1], out=d) if len(gs) > 1 else d.copy_(gs[0])
                for x in gs[2:]:
                    d.add_(x)

        def stack():
            for d, gs in groups:
                torch.sum(torch.stack(gs), 0, out=d)

        def foreach():
            torch._foreach_copy_(dests, [gs[0] for gs in srcs])
            for j in range(1, self.k):
                torch._foreach_add_(dests, [gs[j] for gs in srcs])

        res = time_fns({"fused": fused, "pairwise": pairwise, "stack": stack, "foreach": foreach}, self.device,
                       budget_s, repeat)
        for key, v in res.items():
            if isinstance(v, Exception):
                row[key + "_error"] = _err(v)
            else:
                row[key + "_ms"], row[key + "_repeat"] = v[0] * 1e3, v[1]
        if row.get("fused_ms"):
            moved = numel * dests[0].element_size() * (self.k + 1)  # K reads and one write
            row["fused_gbps"] = moved / (row["fused_ms"] / 1e3) / 1e9
            for key in ("pairwise", "stack", "foreach"):
                if row.get(key + "_ms"):
                    row[key + "_x"] = row[key + "_ms"] / row["fused_ms"]
        return row


class AlbertLike(nn.Module):
    """One feed-forward-like layer of the three tied weights, used `k` times."""

    def __init__(self, k=12):
        super().__init__()
        self.k = k
        self.a = nn.Linear(1024, 1024, bias=False)
        self.up = nn.Linear(1024, 4096, bias=False)
        self.down = nn.Linear(4096, 1024, bias=False)

    def forward(self, x):
        for _ in range(self.k):
            x = x + self.down(torch.nn.functional.gelu(self.up(torch.tanh(self.a(x)))))
        return x


class StepCase:
    kind = "step"

    def __init__(self, name, dtype, device="cpu"):
        self.name, self.dtype, self.device = name, dtype, device
        self.op = "backward"
        self.label = f"{name} step ({STEP_TOKENS} tokens)"

    def run(self, budget_s, repeat):
        import paramops

        row = {"kind": "step", "device": self.device, "dtype": str(self.dtype)[6:], "case": self.name,
               "label": self.label, "op": self.op}
        torch.manual_seed(0)
        plain = AlbertLike().to(self.device, self.dtype)
        tied = AlbertLike().to(self.device, self.dtype)
        tied.load_state_dict(plain.state_dict())
        low = AlbertLike().to(self.device, self.dtype)
        low.load_state_dict(plain.state_dict())
        x = torch.randn(STEP_TOKENS, 1024, device=self.device, dtype=self.dtype)

        def step(model):
            def run():
                model.zero_grad(set_to_none=True)
                model(x).float().square().mean().backward()
            return run

        names = [n for n, _ in tied.named_parameters()]
        hs = [paramops.tie_gradients(tied, params=names), paramops.tie_gradients(low, params=names, low_memory=True)]
        try:
            res = time_fns({"plain": step(plain), "tied": step(tied), "low": step(low)}, self.device, budget_s,
                           repeat)
        finally:
            for h in hs:
                h.remove()
        for key, v in res.items():
            if isinstance(v, Exception):
                row[key + "_error"] = _err(v)
            else:
                row[key + "_ms"], row[key + "_repeat"] = v[0] * 1e3, v[1]
        for key in ("tied", "low"):
            if row.get("plain_ms") and row.get(key + "_ms"):
                row[key + "_x"] = row["plain_ms"] / row[key + "_ms"]
        return row


def tied_cases(tied, steps, devices):
    out = []
    for dev in devices:
        for name in tied:
            out += [TiedCase(name, dt, dev) for dt in TIED_DTYPES]
        for name in steps:
            out += [StepCase(name, dt, dev) for dt in TIED_DTYPES]
    return out
