"""Benchmarks of paramops against torch.nn.init: cases, timers, runner.

Used by `python -m paramops bench` (see paramops/__main__.py) and by the
pytest-benchmark suite in bench/. Reporting (table, JSON, plot) lives in
paramops/bench_report.py.

Every single-tensor case times three things on the same tensor, in the same
run: paramops, the torch.nn.init equivalent, and `Tensor.fill_` (the bandwidth
reference: writing the bytes and nothing else). Every model case (a list of
parameter tensors: GPT-2 small, Llama-7B, `tiny` = many small tensors) times,
interleaved on the same tensors, each of WAYS (the nn.init loop, the paramops.init
loop, the loop inside paramops.fused_init(), paramops.init_module, one
paramops.multi_init_ call) and the fill_ loop.
"""
import hashlib
import math
import os
import re
import sys
import time

import torch

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


def _err(e):
    return f"{type(e).__name__}: {e}".splitlines()[0][:200]


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


# --------------------------------------------------------------------------- memory

def available_bytes(device):
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemAvailable:\s+(\d+) kB", f.read())
        return int(m.group(1)) * 1024
    except (OSError, AttributeError):
        return 4 << 30


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


class PeakMemory:
    """Extra memory used between start() and stop(), in bytes (None if unknown).
    CUDA: max_memory_allocated delta. CPU (Linux): VmHWM at stop minus VmRSS at
    start, with VmHWM reset through /proc/self/clear_refs."""

    def __init__(self, device):
        self.device, self.base = device, None

    @staticmethod
    def _status(key):
        with open("/proc/self/status") as f:
            return int(re.search(key + r":\s+(\d+) kB", f.read()).group(1)) * 1024

    def start(self):
        self.base = None
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = self._status("VmRSS")
        except (OSError, AttributeError):
            pass

    def stop(self):
        if self.base is None:
            return None
        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return max(0, self._status("VmHWM") - self.base)

    def measure(self, fn):
        self.start()
        fn()
        return self.stop()


# --------------------------------------------------------------------------- timing

def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _clock(device, fn, inner):
    """Seconds per call of fn, over `inner` back-to-back calls."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / inner
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def time_fn(fn, device, budget_s=0.5, repeat=None, min_sample_s=1e-3, max_repeat=50, mem=None):
    """(median seconds per call of fn, samples, extra bytes or None).

    One warm-up call, then `repeat` samples (default: as many as fit in
    budget_s, at least 3, at most max_repeat); each sample averages enough
    back-to-back calls to last about min_sample_s. The first timed call is a
    single call, run under `mem` (a PeakMemory) when given, and counts as a
    sample when a call alone lasts min_sample_s."""
    sync(device)
    fn()  # warm-up (first touch, lazy init, allocator)
    sync(device)
    if mem is not None:
        mem.start()
    t1 = _clock(device, fn, 1)
    extra = mem.stop() if mem is not None else None
    inner = max(1, min(1000, int(min_sample_s / max(t1, 1e-9))))
    if repeat is None:
        repeat = int(max(3, min(max_repeat, budget_s / max(t1 * inner, 1e-9))))
    samples = [t1] if inner == 1 else []
    samples += [_clock(device, fn, inner) for _ in range(repeat - len(samples))]
    samples.sort()
    return samples[len(samples) // 2], len(samples), extra


def time_fns(fns, device, budget_s=0.5, repeat=None, min_sample_s=1e-3, max_repeat=50, mem=None):
    """time_fn for several fns of one case, their samples taken in turns (each round
    times every fn once), so that a load change during the case moves them alike and
    their ratios stay meaningful. fns: {key: fn}. Returns {key: (median seconds, samples,
    extra bytes or None)} or, for a fn that raised, {key: the exception}. The budget is
    budget_s per fn."""
    out, inner, samples, extra, first = {}, {}, {}, {}, {}
    for k, fn in fns.items():
        try:
            sync(device)
            fn()  # warm-up
            sync(device)
            if mem is not None:
                mem.start()
            t1 = _clock(device, fn, 1)
            extra[k] = mem.stop() if mem is not None else None
        except Exception as e:  # a missing API, an unsupported dtype: record it, go on
            out[k] = e
            continue
        inner[k] = max(1, min(1000, int(min_sample_s / max(t1, 1e-9))))
        samples[k] = [t1] if inner[k] == 1 else []
        first[k] = t1
    live = [k for k in fns if k in inner]
    if repeat is None:
        round_s = sum(first[k] * inner[k] for k in live)
        repeat = int(max(3, min(max_repeat, budget_s * max(1, len(live)) / max(round_s, 1e-9))))
    for _ in range(repeat):
        for k in list(live):
            if len(samples[k]) >= repeat:
                continue
            try:
                samples[k].append(_clock(device, fns[k], inner[k]))
            except Exception as e:
                out[k] = e
                live.remove(k)
    for k in live:
        s = sorted(samples[k])
        out[k] = (s[len(s) // 2], len(s), extra[k])
    return out


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


def run_case(case, refs, budget_s=0.5, repeat=None):
    """Measure one case; refs caches the fill_ reference per ref_key. Returns a row dict."""
    if case.kind == "model":
        return run_model_case(case, refs, budget_s, repeat)
    row = {"kind": case.kind, "device": case.device, "dtype": str(case.dtype).replace("torch.", ""),
           "case": case.label, "log2n": case.log2n, "model": case.model, "op": case.op,
           "numel": case.numel, "tensor_mb": case.nbytes / 2**20}
    data = case.allocate()
    try:
        f_p, f_i, f_fill = case.fns(data)
        if case.ref_key not in refs:
            refs[case.ref_key] = time_fn(f_fill, case.device, budget_s, repeat)[0]
        t_fill = refs[case.ref_key]
        row["fill_ms"], row["fill_gbps"] = t_fill * 1e3, case.nbytes / t_fill / 1e9
        mem = PeakMemory(case.device)
        for key, fn in (("init", f_i), ("paramops", f_p)):
            try:
                t, n, extra = time_fn(fn, case.device, budget_s, repeat, mem=mem)
            except Exception as e:  # an unsupported dtype, say: record it, go on
                row[key + "_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                continue
            row[key + "_ms"], row[key + "_gbps"] = t * 1e3, case.nbytes / t / 1e9
            row[key + "_extra_mb"] = None if extra is None else extra / 2**20
            row[key + "_repeat"] = n
        if "paramops_ms" in row:
            row["pct_fill"] = 100.0 * t_fill / (row["paramops_ms"] / 1e3)
            if "init_ms" in row:
                row["speedup"] = row["init_ms"] / row["paramops_ms"]
    finally:
        del data
        if case.device == "cuda":
            torch.cuda.empty_cache()
    return row


def run_model_case(case, refs, budget_s=0.5, repeat=None):
    """Measure a model case: every way of case.ways and the fill_ loop, interleaved, on
    the same tensors. Row keys per way (prefix WAY_KEYS[way]): _ms, _gbps, _extra_mb,
    _repeat, _x (nn.init time / its time), _pct_fill, or _error. speedup and pct_fill
    are those of the paramops.init loop, as in the single-tensor rows."""
    row = {"kind": case.kind, "device": case.device, "dtype": str(case.dtype).replace("torch.", ""),
           "case": case.label, "log2n": None, "model": case.model, "op": case.op,
           "numel": case.numel, "tensor_mb": case.nbytes / 2**20, "tensors": len(case.params),
           "ways": list(case.ways)}
    if case.shape:
        row["shape"] = list(case.shape)
    data = case.allocate()
    try:
        if case.check:
            row["check"] = check_ways(case.params, case.op, data, case.ways)
        fns = case.way_fns(data)
        for way, f in list(fns.items()):
            if isinstance(f, Exception):
                row[WAY_KEYS[way] + "_error"] = _err(f)
                del fns[way]
        if case.ref_key not in refs:
            fns["fill_"] = lambda: fill_all_fn(data)
        res = time_fns(fns, case.device, budget_s, repeat, mem=PeakMemory(case.device))
        if "fill_" in res:
            r = res.pop("fill_")
            refs[case.ref_key] = r[0] if isinstance(r, tuple) else None
        t_fill = refs.get(case.ref_key)
        if t_fill:
            row["fill_ms"], row["fill_gbps"] = t_fill * 1e3, case.nbytes / t_fill / 1e9
        for way, r in res.items():
            key = WAY_KEYS[way]
            if isinstance(r, Exception):
                row[key + "_error"] = _err(r)
                continue
            t, n, extra = r
            row[key + "_ms"], row[key + "_gbps"] = t * 1e3, case.nbytes / t / 1e9
            row[key + "_extra_mb"] = None if extra is None else extra / 2**20
            row[key + "_repeat"] = n
        t_init = row.get("init_ms")
        best = None
        for way in case.ways:
            key = WAY_KEYS[way]
            ms = row.get(key + "_ms")
            if ms is None:
                continue
            if t_init:
                row[key + "_x"] = t_init / ms
            if t_fill:
                row[key + "_pct_fill"] = 100.0 * t_fill * 1e3 / ms
            if way != "nn.init" and (best is None or ms < row[WAY_KEYS[best] + "_ms"]):
                best = way
        if best is not None:
            row["best_way"], row["best_ms"] = best, row[WAY_KEYS[best] + "_ms"]
            row["best_x"] = row.get(WAY_KEYS[best] + "_x")
        if "paramops_x" in row:
            row["speedup"] = row["paramops_x"]
        if "paramops_pct_fill" in row:
            row["pct_fill"] = row["paramops_pct_fill"]
    finally:
        fns = None
        del data
        if case.device == "cuda":
            torch.cuda.empty_cache()
    return row


def run(cases, budget_s=0.5, repeat=None, progress=True):
    """Run all cases; a tqdm bar on a terminal, one line per case otherwise."""
    rows, refs = [], {}
    bar = None
    if progress and sys.stderr.isatty():
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(cases), unit="case", dynamic_ncols=True)
        except ImportError:
            pass
    for k, c in enumerate(cases, 1):
        desc = f"{c.device} {str(c.dtype)[6:]} {c.label} {c.op}"
        if bar is not None:
            bar.set_description(desc)
        elif progress:
            print(f"[{k}/{len(cases)}] {desc}", file=sys.stderr, flush=True)
        load = _loadavg()
        rows.append(run_case(c, refs, budget_s, repeat))
        rows[-1]["loadavg_1min"] = load  # at the start of the case: CPU timings are only comparable when low
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rows

# --------------------------------------------------------------------------- CLI

def add_arguments(p):
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                   help="all = cpu, plus cuda when available (default)")
    p.add_argument("--ops", default=",".join(OPS),
                   help="comma list, or 'none' for model cases only (default: %(default)s)")
    p.add_argument("--dtypes", default=None, help="comma list of " + ",".join(DTYPES) + " (default: all four)")
    p.add_argument("--sizes", default=None,
                   help="comma list of log2(numel), e.g. 16,20,24 (default CPU 12..26, CUDA 12..28)")
    p.add_argument("--models", default=None,
                   help="comma list of gpt2, gpt2:trunc, llama7b, llama7b:trunc, tiny (10000 float32 tensors "
                        "of 64 elements), tiny:N:M (N tensors of M elements), or 'none' "
                        "(default: " + ",".join(DEFAULT_MODELS) + "; --quick: " + ",".join(QUICK_MODELS) + ")")
    p.add_argument("--ways", default=",".join(WAYS),
                   help="model cases: comma list of the ways timed (default: %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="model cases: first check, untimed, that the paramops ways write the same bits as "
                        "the paramops.init loop after the same torch.manual_seed")
    p.add_argument("--llama-layers", type=int, default=None,
                   help="decoder layers of the Llama-7B list (default: all 32 if memory allows, else a few)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, fp32+bf16, models " + ",".join(QUICK_MODELS) + ", short timing")
    p.add_argument("--repeat", type=int, default=None, help="timed samples per measurement (default adaptive)")
    p.add_argument("--budget", type=float, default=None, help="seconds per measurement for adaptive repeats")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", default="bench_out", help="folder for the JSON and PNG (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def _loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _csv(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def main(args):
    from . import bench_report

    if args.threads:
        torch.set_num_threads(args.threads)
    ops = [] if args.ops == "none" else _csv(args.ops)
    for op in ops:
        if op not in OPS:
            raise SystemExit(f"unknown op {op!r}; choose from {', '.join(OPS)}")
    dtypes = _csv(args.dtypes) if args.dtypes else (["float32", "bfloat16"] if args.quick else list(DTYPES))
    for dt in dtypes:
        if dt not in DTYPES:
            raise SystemExit(f"unknown dtype {dt!r}; choose from {', '.join(DTYPES)}")
    sizes = [int(s) for s in _csv(args.sizes)] if args.sizes else None
    if args.models is None:
        models = QUICK_MODELS if args.quick else DEFAULT_MODELS
    else:
        models = [] if args.models == "none" else _csv(args.models)
    for m in models:
        try:
            parse_model(m)
        except ValueError as e:
            raise SystemExit(str(e))
    ways = _csv(args.ways)
    for w in ways:
        if w not in WAYS:
            raise SystemExit(f"unknown way {w!r}; choose from {', '.join(WAYS)}")
    if "nn.init" not in ways:
        ways.insert(0, "nn.init")  # the ratios' reference
    budget = args.budget if args.budget is not None else (0.1 if args.quick else 0.5)

    cases = build_cases(devices_for(args.device), ops, dtypes, sizes, models, args.quick, args.llama_layers,
                        ways, args.check)
    load0 = _loadavg()
    if load0 and load0 > 0.25 * (os.cpu_count() or 1):
        print(f"warning: load average {load0:.2f} on {os.cpu_count()} cores before the run: other work "
              "on this machine will distort the CPU timings", file=sys.stderr)
    t0 = time.perf_counter()
    rows = run(cases, budget, args.repeat, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    settings = {"ops": ops, "dtypes": dtypes, "sizes_log2": sizes, "models": models, "ways": ways,
                "check": args.check, "quick": args.quick,
                "repeat": args.repeat, "budget_s": budget, "wall_s": wall,
                "loadavg_1min_start": load0, "loadavg_1min_end": _loadavg(),
                "op_args": {k: list(v[0]) for k, v in OPS.items()}}
    from . import _backend
    info = _backend.backend_info()
    print(f"backends: cpu tensors {info['cpu']}, cuda tensors {_backend.cuda_backend()} "
          f"(PARAMOPS_BACKEND={info['forced']})")
    print(bench_report.table(rows))
    os.makedirs(args.out, exist_ok=True)
    path_json = bench_report.write_json(rows, settings, args.out)
    print(f"\nwrote {path_json}")
    if not args.no_plot:
        path_png = bench_report.plot(rows, path_json[:-len(".json")] + ".png")
        if path_png:
            print(f"wrote {path_png}")
        path_png = bench_report.plot_models(rows, path_json[:-len(".json")] + "-models.png")
        if path_png:
            print(f"wrote {path_png}")
    print(f"{len(rows)} cases in {wall:.1f} s")
    return 0
