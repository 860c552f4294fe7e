"""Benchmark cases: what is timed (python -m paramops bench, and the pytest-benchmark suite in
bench/).

* tensor cases: one op on one tensor, against its torch.nn.init equivalent and Tensor.fill_
  (the bandwidth reference: writing the bytes and nothing else);
* model cases: a list of parameter tensors (GPT-2 small, Llama-7B, `tiny` = many small
  tensors) initialised each of WAYS, interleaved on the same tensors, and the fill_ loop;
* call and build cases (paramops.bench.calls): the cost of one call, of recording one in
  fused mode, of patched(), and of building whole models under each mode against plain
  torch.
"""
import hashlib
import math

import torch

from .timing import _err, available_bytes

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
DEFAULT_SIZES = {"cpu": [12, 16, 20, 24, 26], "cuda": [12, 16, 20, 24, 26, 28]}  # log2(numel)
QUICK_SIZES = {"cpu": [12, 16, 20], "cuda": [16, 20, 24]}
DEFAULT_MODELS = ["gpt2", "gpt2:trunc", "llama7b", "tiny"]
QUICK_MODELS = ["gpt2", "tiny"]
MODEL_DTYPES = {"gpt2": torch.float32, "llama7b": torch.bfloat16, "tiny": torch.float32}

# op name -> (positional args shared by paramops and nn.init, nn.init function name)
OPS = {
    "normal_": ((0.0, 0.02), "normal_"),
    "uniform_": ((-0.05, 0.05), "uniform_"),
    "trunc_normal_": ((0.0, 0.02, -0.04, 0.04), "trunc_normal_"),  # +-2 std
    "fill_": ((0.5,), "constant_"),
}


def op_fn(op, impl):
    """fn(tensor) running `op` with the bench arguments; impl is 'paramops' or 'nn.init'."""
    args, init_name = OPS[op]
    if impl == "paramops":
        import paramops
        f = getattr(paramops, op)
    else:
        f = getattr(torch.nn.init, init_name)
    return lambda t: f(t, *args)


# --------------------------------------------------------------------------- models

def gpt2_params():
    """GPT-2 small: 148 tensors as (name, shape, init, std); init is w|one|zero."""
    n_layer, d = 12, 768
    proj_std = 0.02 / math.sqrt(2 * n_layer)  # GPT-2's scaled init of residual projections
    p = [("wte.weight", (50257, d), "w", 0.02), ("wpe.weight", (1024, d), "w", 0.02)]
    for i in range(n_layer):
        h = f"h.{i}."
        p += [
            (h + "ln_1.weight", (d,), "one", 0), (h + "ln_1.bias", (d,), "zero", 0),
            (h + "attn.c_attn.weight", (d, 3 * d), "w", 0.02), (h + "attn.c_attn.bias", (3 * d,), "zero", 0),
            (h + "attn.c_proj.weight", (d, d), "w", proj_std), (h + "attn.c_proj.bias", (d,), "zero", 0),
            (h + "ln_2.weight", (d,), "one", 0), (h + "ln_2.bias", (d,), "zero", 0),
            (h + "mlp.c_fc.weight", (d, 4 * d), "w", 0.02), (h + "mlp.c_fc.bias", (4 * d,), "zero", 0),
            (h + "mlp.c_proj.weight", (4 * d, d), "w", proj_std), (h + "mlp.c_proj.bias", (d,), "zero", 0),
        ]
    p += [("ln_f.weight", (d,), "one", 0), ("ln_f.bias", (d,), "zero", 0)]
    assert len(p) == 148, len(p)
    return p


LLAMA_LAYERS = 32


def llama7b_params(n_layers=LLAMA_LAYERS):
    """Llama-7B shapes (embed, n_layers decoder layers, final norm, lm_head)."""
    d, ff, vocab = 4096, 11008, 32000
    p = [("embed_tokens.weight", (vocab, d), "w", 0.02)]
    for i in range(n_layers):
        L = f"layers.{i}."
        p += [(L + f"self_attn.{x}_proj.weight", (d, d), "w", 0.02) for x in "qkvo"]
        p += [(L + "mlp.gate_proj.weight", (ff, d), "w", 0.02), (L + "mlp.up_proj.weight", (ff, d), "w", 0.02),
              (L + "mlp.down_proj.weight", (d, ff), "w", 0.02),
              (L + "input_layernorm.weight", (d,), "one", 0), (L + "post_attention_layernorm.weight", (d,), "one", 0)]
    p += [("norm.weight", (d,), "one", 0), ("lm_head.weight", (vocab, d), "w", 0.02)]
    return p


TINY_SHAPE = (10_000, 64)


def tiny_params(n=TINY_SHAPE[0], m=TINY_SHAPE[1]):
    """n tensors of m elements, all weights with std 0.02: the per-call overhead case."""
    return [(f"t.{i}", (m,), "w", 0.02) for i in range(n)]


def numel_of(params):
    return sum(math.prod(shape) for _, shape, _, _ in params)


def llama_layers_for(device, dtype=torch.bfloat16, requested=None):
    """How many decoder layers to bench: requested, else the full 32 when
    that takes at most 1/4 (CPU) or 1/2 (GPU) of free memory, else as many as
    fit in min(that, 1.5 GiB) on CPU, at least 1."""
    if requested:
        return min(int(requested), LLAMA_LAYERS)
    es = torch.empty((), dtype=dtype).element_size()
    share = available_bytes(device) // (2 if device == "cuda" else 4)
    if numel_of(llama7b_params()) * es <= share:
        return LLAMA_LAYERS
    if device == "cpu":
        share = min(share, int(1.5 * 2**30))
    base = numel_of(llama7b_params(0)) * es
    per_layer = numel_of(llama7b_params(1)) * es - base
    return max(1, min(LLAMA_LAYERS, (share - base) // per_layer))


# The ways of initialising a model's tensor list, timed side by side on the same tensors.
#   nn.init      Python loop of torch.nn.init calls, one per tensor (the baseline)
#   paramops     the same loop through paramops.init (single-tensor calls)
#   fused        the nn.init loop inside `with paramops.fused_init():` (the whole block timed)
#   init_module  an nn.Module holding the tensors as Parameters, whose reset_parameters()
#                runs the nn.init loop, through paramops.init_module(module)
#   multi        one paramops.multi_init_ call (its lists built once, outside the timer)
WAYS = ("nn.init", "paramops", "fused", "init_module", "multi")
# row key prefix of each way (nn.init keeps the single-tensor rows' "init_" keys)
WAY_KEYS = {"nn.init": "init", "paramops": "paramops", "fused": "fused", "init_module": "init_module",
            "multi": "multi"}


def _calls(params, weight_op):
    """[(torch.nn.init function name, args)] per tensor: weights with weight_op ('normal_'
    or 'trunc_normal_', std from the list, truncated at +-2 std), biases 0, norm weights 1."""
    calls = []
    for _, _, kind, std in params:
        if kind == "w":
            a = (0.0, std) if weight_op == "normal_" else (0.0, std, -2 * std, 2 * std)
            calls.append((weight_op, a))
        else:
            calls.append(("constant_", (1.0 if kind == "one" else 0.0,)))
    return calls


def paramops_init_module():
    """paramops.init (the torch.nn.init drop-in)."""
    import paramops
    m = getattr(paramops, "init", None)
    if m is None:
        import importlib
        m = importlib.import_module("paramops.init")
    return m


def model_init_fn(params, impl, weight_op):
    """fn(tensors) initialising tensors as a model would (see _calls), one
    single-tensor call per parameter; impl 'nn.init' (torch.nn.init) or 'paramops'
    (paramops.init). The function is looked up on the module at each call, as model
    code does (`nn.init.normal_(...)`), so that fused_init's patching of torch.nn.init
    reaches it."""
    mod = torch.nn.init if impl == "nn.init" else paramops_init_module()
    calls = _calls(params, weight_op)

    def run(tensors):
        for t, (name, a) in zip(tensors, calls):
            getattr(mod, name)(t, *a)
    return run


def fill_all_fn(tensors):
    for t in tensors:
        t.fill_(0.5)


def fused_init_fn(params, weight_op):
    """fn(tensors): the nn.init loop inside `with paramops.fused_init():`."""
    import paramops
    fused_init = paramops.fused_init
    loop = model_init_fn(params, "nn.init", weight_op)

    def run(tensors):
        with fused_init():
            loop(tensors)
    return run


class InitHolder(torch.nn.Module):
    """A module holding `tensors` (storage shared) as Parameters, whose
    reset_parameters() runs the torch.nn.init loop over them."""

    def __init__(self, tensors, params, weight_op, requires_grad=True):
        super().__init__()
        self.weights = torch.nn.ParameterList(torch.nn.Parameter(t, requires_grad=requires_grad) for t in tensors)
        self._plain = list(self.weights)  # iterating a ParameterList costs ~1 us a tensor
        self._loop = model_init_fn(params, "nn.init", weight_op)

    def reset_parameters(self):
        self._loop(self._plain)


def init_module_fn(params, weight_op, tensors):
    """fn(): paramops.init_module(InitHolder(tensors)); the module is built here, untimed."""
    import paramops
    init_module = paramops.init_module
    holder = InitHolder(tensors, params, weight_op)
    return lambda: init_module(holder)


MULTI_KINDS = {"normal_": "normal", "trunc_normal_": "trunc_normal", "constant_": "fill"}


def multi_lists(params, weight_op):
    """(kinds, params) for paramops.multi_init_: per tensor, or one kind and one tuple when
    every tensor gets the same init (as a user would write it; e.g. the tiny case)."""
    calls = _calls(params, weight_op)
    kinds, ps = [MULTI_KINDS[name] for name, _ in calls], [tuple(a) for _, a in calls]
    if len(set(kinds)) == 1 and len(set(ps)) == 1:
        return kinds[0], ps[0]
    return kinds, ps


def multi_init_fn(params, weight_op):
    """fn(tensors): one paramops.multi_init_ call; the lists are built here, untimed."""
    import paramops
    multi_init_ = paramops.multi_init_
    kinds, ps = multi_lists(params, weight_op)
    return lambda tensors: multi_init_(tensors, kinds, ps)


def way_fn(way, params, weight_op, tensors):
    """A no-argument fn initialising `tensors` (a list laid out as `params`) the given way.
    Raises (AttributeError, ...) when the API the way needs is missing."""
    if way in ("nn.init", "paramops"):
        f = model_init_fn(params, way, weight_op)
    elif way == "fused":
        f = fused_init_fn(params, weight_op)
    elif way == "init_module":
        return init_module_fn(params, weight_op, tensors)
    elif way == "multi":
        f = multi_init_fn(params, weight_op)
    elif way == "fill_":
        f = fill_all_fn
    else:
        raise ValueError(f"unknown way {way!r}; choose from {', '.join(WAYS)}")
    return lambda: f(tensors)


def _digest(t):
    b = t.detach().reshape(-1).view(torch.uint8).cpu()
    return hashlib.blake2b(b.numpy(), digest_size=16).digest()


def check_ways(params, weight_op, tensors, ways=WAYS, ref="paramops", seed=1234):
    """Bitwise check, untimed: after torch.manual_seed(seed), every paramops way must write
    the same bits as `ref` (the paramops.init loop) into every tensor. nn.init is left
    out (its values differ by design). The tensors are set to NaN before each way, so a
    way that skips a tensor shows. Returns {way: 'ok' | 'differs: ...' | 'error: ...'}."""
    def values(way):
        for t in tensors:
            t.fill_(float("nan"))
        fn = way_fn(way, params, weight_op, tensors)
        torch.manual_seed(seed)
        fn()
        return [_digest(t) for t in tensors]

    out = {}
    try:
        want = values(ref)
    except Exception as e:
        return {ref: "error: " + _err(e)}
    out[ref] = "ok (reference)"
    for way in ways:
        if way in ("nn.init", ref):
            continue
        try:
            got = values(way)
        except Exception as e:
            out[way] = "error: " + _err(e)
            continue
        bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
        out[way] = "ok" if not bad else (f"differs: {len(bad)} of {len(want)} tensors "
                                         f"(first: {params[bad[0]][0]} {tuple(tensors[bad[0]].shape)})")
    return out


def parse_model(spec):
    """'gpt2' | 'llama7b' | 'tiny' | 'tiny:N:M', each optionally with ':trunc' (weights by
    trunc_normal_) -> (model, weight_op, tiny shape or None)."""
    name, *parts = spec.split(":")
    variants = [p for p in parts if not p.isdigit()]
    nums = [int(p) for p in parts if p.isdigit()]
    ok = name in MODEL_DTYPES and len(variants) <= 1 and all(v in ("trunc", "normal") for v in variants)
    ok = ok and (not nums or (name == "tiny" and len(nums) <= 2 and all(n > 0 for n in nums)))
    if not ok:
        raise ValueError(f"unknown model case {spec!r} (gpt2, llama7b, tiny or tiny:N:M for N tensors of "
                         "M elements; each optionally with :trunc)")
    shape = None
    if name == "tiny":
        shape = (nums + list(TINY_SHAPE)[len(nums):]) if nums else list(TINY_SHAPE)
        shape = tuple(shape)
    return name, ("trunc_normal_" if "trunc" in variants else "normal_"), shape


# --------------------------------------------------------------------------- cases

class Case:
    """One measured thing: a single tensor (kind 'tensor') or a model's
    parameter list (kind 'model'), with its op, device and dtype."""

    def __init__(self, kind, device, dtype, op, log2n=None, model=None, n_layers=None, shape=None,
                 ways=WAYS, check=False):
        self.kind, self.device, self.dtype, self.op = kind, device, dtype, op
        self.log2n, self.model, self.n_layers, self.shape = log2n, model, n_layers, shape
        self.ways, self.check = tuple(ways), check  # model cases: the ways timed; bitwise check first
        self._params = None

    @property
    def params(self):
        if self._params is None:
            if self.model == "gpt2":
                self._params = gpt2_params()
            elif self.model == "tiny":
                self._params = tiny_params(*self.shape)
            else:
                self._params = llama7b_params(self.n_layers)
        return self._params

    @property
    def numel(self):
        return 2 ** self.log2n if self.kind == "tensor" else numel_of(self.params)

    @property
    def nbytes(self):
        return self.numel * torch.empty((), dtype=self.dtype).element_size()

    @property
    def label(self):
        if self.kind == "tensor":
            return f"2^{self.log2n}"
        if self.model == "gpt2":
            return f"gpt2[{len(self.params)} tensors]"
        if self.model == "tiny":
            return f"tiny[{self.shape[0]}x{self.shape[1]}]"
        return f"llama7b[{self.n_layers}/{LLAMA_LAYERS} layers]"

    @property
    def ref_key(self):
        """Cases sharing a key share one fill_ reference measurement."""
        return (self.kind, self.device, self.dtype, self.log2n, self.model, self.n_layers, self.shape)

    def allocate(self):
        if self.kind == "tensor":
            return torch.empty(self.numel, dtype=self.dtype, device=self.device)
        return [torch.empty(shape, dtype=self.dtype, device=self.device) for _, shape, _, _ in self.params]

    def fns(self, data):
        """(paramops fn, nn.init fn, fill_ reference fn), each taking no argument."""
        if self.kind == "tensor":
            p, i = op_fn(self.op, "paramops"), op_fn(self.op, "nn.init")
            return (lambda: p(data)), (lambda: i(data)), (lambda: data.fill_(0.5))
        p = model_init_fn(self.params, "paramops", self.op)
        i = model_init_fn(self.params, "nn.init", self.op)
        return (lambda: p(data)), (lambda: i(data)), (lambda: fill_all_fn(data))

    def way_fns(self, data):
        """{way: no-argument fn, or the exception building it raised} for the model
        ways of this case, on the tensor list `data`."""
        out = {}
        for way in self.ways:
            try:
                out[way] = way_fn(way, self.params, self.op, data)
            except Exception as e:
                out[way] = e
        return out


def devices_for(arg):
    if arg == "cpu":
        return ["cpu"]
    if arg == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch.cuda.is_available() is False")
        return ["cuda"]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def build_cases(devices, ops, dtypes, sizes=None, models=(), quick=False, llama_layers=None, ways=WAYS,
                check=False):
    cases = []
    for dev in devices:
        logs = sizes or (QUICK_SIZES if quick else DEFAULT_SIZES)[dev]
        for dt in dtypes:
            for n in logs:
                if 3 * (2 ** n) * DTYPES[dt].itemsize > available_bytes(dev):
                    continue  # cannot hold the tensor and a temporary or two
                cases += [Case("tensor", dev, DTYPES[dt], op, log2n=n) for op in ops]
        for spec in models:
            name, wop, shape = parse_model(spec)
            nl = llama_layers_for(dev, MODEL_DTYPES[name], llama_layers) if name == "llama7b" else None
            cases.append(Case("model", dev, MODEL_DTYPES[name], wop, model=name, n_layers=nl, shape=shape,
                              ways=ways, check=check))
    return cases


