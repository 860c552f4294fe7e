"""Call-path cases: what one call costs, and whole models built under each mode against plain
torch ("never slower": paramops must not make anything worse).

call cases (--calls), each a loop over CALL_N float32 tensors of 64 elements:
  normal64  paramops.init.normal_ against torch.nn.init.normal_, per call;
  record    torch.nn.init.normal_ inside an open paramops.fused_init() (the record only,
            the flush at exit untimed) against the eager torch.nn.init.normal_, per call;
  patched   `with paramops.patched(): pass` (enter plus exit), with transformers and its
            GPT-2 model imported when it is installed (~2,900 modules: what a scan walks).

build cases (--builds): construct the model with plain torch, inside paramops.fused_init(),
inside paramops.patched(); and re-initialize a built one with its own init logic through
torch (paramops.model's reset, unpatched) and through paramops.init_module:
  tiny   a module of BUILD_TINY parameters of 64 elements, each normal_(0, 0.02);
  cnn    three Conv2d, two BatchNorm2d and a Linear;
  gpt2   transformers' GPT2LMHeadModel(GPT2Config()) (124M parameters, float32);
  llama  a module holding the Llama-7B shapes of paramops.bench.cases (bfloat16, the
         layers --llama-layers says, default 1), initialised as Llama is.
"""
import sys
import time

import torch
from torch import nn

from .timing import _err, time_fns

CALL_N = 3000
BUILD_TINY = 3000
CALLS = ("normal64", "record", "patched")
BUILDS = ("tiny", "cnn", "gpt2", "llama")


def _per_call(res, n):
    return {k: (v if isinstance(v, Exception) else (v[0] / n * 1e6, v[1])) for k, v in res.items()}


class CallCase:
    kind = "call"

    def __init__(self, name):
        self.name, self.device, self.dtype, self.op = name, "cpu", torch.float32, "normal_"
        self.label = {"normal64": f"{CALL_N} x normal_ on 64 elements", "record": f"{CALL_N} x record in fused_init",
                      "patched": "patched() enter + exit"}[name]

    def run(self, budget_s, repeat):
        import paramops

        row = {"kind": "call", "device": "cpu", "dtype": "float32", "case": self.name, "label": self.label,
               "op": self.op, "n": CALL_N}
        ts = [torch.empty(64) for _ in range(CALL_N)]
        nn_normal, p_normal = torch.nn.init.normal_, paramops.init.normal_

        def torch_loop():
            for t in ts:
                nn_normal(t, 0.0, 0.02)

        if self.name == "normal64":
            def paramops_loop():
                for t in ts:
                    p_normal(t, 0.0, 0.02)
            res = _per_call(time_fns({"torch": torch_loop, "paramops": paramops_loop}, "cpu", budget_s, repeat),
                            CALL_N)
        elif self.name == "record":
            res = _per_call(self._record(ts, torch_loop, repeat), CALL_N)
        else:
            try:  # its modules (a model's included) are part of what patched() must cover
                from transformers import GPT2LMHeadModel  # noqa: F401
                row["transformers"] = True
            except ImportError:
                row["transformers"] = False
            row["modules"] = len(sys.modules)

            def enter_exit():
                with paramops.patched():
                    pass
            res = _per_call(time_fns({"paramops": enter_exit}, "cpu", budget_s, repeat, min_sample_s=1e-2), 1)
        for k, v in res.items():
            if isinstance(v, Exception):
                row[k + "_error"] = _err(v)
            else:
                row[k + "_us"], row[k + "_repeat"] = v
        if row.get("torch_us") and row.get("paramops_us"):
            row["x"] = row["torch_us"] / row["paramops_us"]
        return row

    @staticmethod
    def _record(ts, torch_loop, repeat):
        """The record loop, timed inside an open fused_init (flushed at exit, untimed), in
        turns with the eager loop: {key: (median seconds, samples)}."""
        import paramops

        samples = {"torch": [], "paramops": []}
        torch_loop()  # warm-up
        for _ in range(max(5, repeat or 7)):
            t0 = time.perf_counter()
            torch_loop()
            samples["torch"].append(time.perf_counter() - t0)
            with paramops.fused_init():
                normal = torch.nn.init.normal_  # patched: paramops, recorded
                t0 = time.perf_counter()
                for t in ts:
                    normal(t, 0.0, 0.02)
                samples["paramops"].append(time.perf_counter() - t0)
        return {k: (sorted(v)[len(v) // 2], len(v)) for k, v in samples.items()}


# ------------------------------------------------------------------ builds
class Tiny(nn.Module):
    def __init__(self, n=BUILD_TINY):
        super().__init__()
        self.ps = nn.ParameterList(nn.Parameter(torch.empty(64)) for _ in range(n))
        self._plain = list(self.ps)
        self.reset_parameters()

    def reset_parameters(self):
        for p in self._plain:
            nn.init.normal_(p, 0.0, 0.02)


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 64, 3),
                         nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, 10))


class LlamaShaped(nn.Module):
    """The Llama-7B parameter shapes (paramops.bench.cases.llama7b_params), initialised as
    Llama does: weights normal_(0, 0.02), norm weights 1."""

    def __init__(self, n_layers=1, dtype=torch.bfloat16):
        from .cases import llama7b_params

        super().__init__()
        self.spec = llama7b_params(n_layers)
        self.ps = nn.ParameterList(nn.Parameter(torch.empty(shape, dtype=dtype)) for _, shape, _, _ in self.spec)
        self._plain = list(self.ps)
        self.reset_parameters()

    def reset_parameters(self):
        for p, (_, _, kind, std) in zip(self._plain, self.spec):
            if kind == "w":
                nn.init.normal_(p, 0.0, std)
            else:
                nn.init.ones_(p)


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    return GPT2LMHeadModel(GPT2Config())


class BuildCase:
    kind = "build"

    def __init__(self, name, llama_layers=None):
        self.name, self.device = name, "cpu"
        self.llama_layers = llama_layers or 1
        self.dtype = torch.bfloat16 if name == "llama" else torch.float32
        self.op = "model"
        self.label = {"tiny": f"{BUILD_TINY} tiny tensors", "cnn": "small CNN", "gpt2": "GPT-2 small",
                      "llama": f"Llama-7B shapes [{self.llama_layers}/32 layers]"}[name]

    def make(self):
        if self.name == "tiny":
            return Tiny
        if self.name == "cnn":
            return small_cnn
        if self.name == "gpt2":
            return _gpt2
        return lambda: LlamaShaped(self.llama_layers)

    def run(self, budget_s, repeat):
        import paramops
        from paramops.model import _reset

        row = {"kind": "build", "device": "cpu", "dtype": str(self.dtype)[6:], "case": self.name,
               "label": self.label, "op": "model"}
        make = self.make()
        try:
            model = make()
        except Exception as e:  # transformers missing, say
            row["error"] = _err(e)
            return row
        row["params"] = sum(p.numel() for p in model.parameters())
        keep = []  # the last build of each way stays alive until its next build replaces it

        def way(ctx):
            def build():
                keep.clear()
                with ctx():
                    keep.append(make())
            return build

        fns = {"torch": way(_nothing), "fused": way(paramops.fused_init), "patched": way(paramops.patched),
               "reinit_torch": lambda: _reset(model), "init_module": lambda: paramops.init_module(model)}
        res = time_fns(fns, "cpu", budget_s, repeat)
        for k, v in res.items():
            if isinstance(v, Exception):
                row[k + "_error"] = _err(v)
            else:
                row[k + "_ms"], row[k + "_repeat"] = v[0] * 1e3, v[1]
        for k, ref in (("fused", "torch"), ("patched", "torch"), ("init_module", "reinit_torch")):
            if row.get(k + "_ms") and row.get(ref + "_ms"):
                row[k + "_x"] = row[ref + "_ms"] / row[k + "_ms"]
        return row


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def call_cases(calls, builds, llama_layers=None):
    return [CallCase(c) for c in calls] + [BuildCase(b, llama_layers) for b in builds]
