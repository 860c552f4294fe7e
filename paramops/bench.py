"""Benchmarks of paramops against torch.nn.init: cases, timers, runner.

Used by `python -m paramops bench` (see paramops/__main__.py) and by the
pytest-benchmark suite in bench/. Reporting (table, JSON, plot) lives in
paramops/bench_report.py.

Every case times three things on the same tensor(s), in the same run:
paramops, the torch.nn.init equivalent, and `Tensor.fill_` (the bandwidth
reference: writing the bytes and nothing else).
"""
import math
import os
import re
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
DEFAULT_SIZES = {"cpu": [12, 16, 20, 24, 26], "cuda": [12, 16, 20, 24, 26, 28]}  # log2(numel)
QUICK_SIZES = {"cpu": [12, 16, 20], "cuda": [16, 20, 24]}
DEFAULT_MODELS = ["gpt2", "gpt2:trunc", "llama7b"]
MODEL_DTYPES = {"gpt2": torch.float32, "llama7b": torch.bfloat16}

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


def numel_of(params):
    return sum(math.prod(shape) for _, shape, _, _ in params)


def model_init_fn(params, impl, weight_op):
    """fn(tensors) initialising tensors as a model would: weights with
    weight_op ('normal_' or 'trunc_normal_', std from the list, trunc at +-2 std),
    biases with 0, norm weights with 1; one single-tensor call per parameter."""
    if impl == "paramops":
        import paramops as m
        const = m.fill_
    else:
        m = torch.nn.init
        const = m.constant_
    wf = getattr(m, weight_op)
    calls = []
    for _, _, kind, std in params:
        if kind == "w":
            a = (0.0, std) if weight_op == "normal_" else (0.0, std, -2 * std, 2 * std)
            calls.append((wf, a))
        else:
            calls.append((const, (1.0 if kind == "one" else 0.0,)))

    def run(tensors):
        for t, (f, a) in zip(tensors, calls):
            f(t, *a)
    return run


def fill_all_fn(tensors):
    for t in tensors:
        t.fill_(0.5)


def parse_model(spec):
    """'gpt2' | 'gpt2:trunc' | 'llama7b' | 'llama7b:trunc' -> (model, weight_op)."""
    name, _, variant = spec.partition(":")
    if name not in MODEL_DTYPES or variant not in ("", "trunc", "normal"):
        raise ValueError(f"unknown model case {spec!r} (gpt2, llama7b, optionally :trunc)")
    return name, ("trunc_normal_" if variant == "trunc" else "normal_")


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


# --------------------------------------------------------------------------- cases

class Case:
    """One measured thing: a single tensor (kind 'tensor') or a model's
    parameter list (kind 'model'), with its op, device and dtype."""

    def __init__(self, kind, device, dtype, op, log2n=None, model=None, n_layers=None):
        self.kind, self.device, self.dtype, self.op = kind, device, dtype, op
        self.log2n, self.model, self.n_layers = log2n, model, n_layers

    @property
    def params(self):
        if self.model == "gpt2":
            return gpt2_params()
        return llama7b_params(self.n_layers)

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
        return f"llama7b[{self.n_layers}/{LLAMA_LAYERS} layers]"

    @property
    def ref_key(self):
        """Cases sharing a key share one fill_ reference measurement."""
        return (self.kind, self.device, self.dtype, self.log2n, self.model, self.n_layers)

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


def devices_for(arg):
    if arg == "cpu":
        return ["cpu"]
    if arg == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch.cuda.is_available() is False")
        return ["cuda"]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def build_cases(devices, ops, dtypes, sizes=None, models=(), quick=False, llama_layers=None):
    cases = []
    for dev in devices:
        logs = sizes or (QUICK_SIZES if quick else DEFAULT_SIZES)[dev]
        for dt in dtypes:
            for n in logs:
                if 3 * (2 ** n) * DTYPES[dt].itemsize > available_bytes(dev):
                    continue  # cannot hold the tensor and a temporary or two
                cases += [Case("tensor", dev, DTYPES[dt], op, log2n=n) for op in ops]
        for spec in models:
            name, wop = parse_model(spec)
            nl = llama_layers_for(dev, MODEL_DTYPES[name], llama_layers) if name == "llama7b" else None
            cases.append(Case("model", dev, MODEL_DTYPES[name], wop, model=name, n_layers=nl))
    return cases


def run_case(case, refs, budget_s=0.5, repeat=None):
    """Measure one case; refs caches the fill_ reference per ref_key. Returns a row dict."""
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
        rows.append(run_case(c, refs, budget_s, repeat))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rows

# --------------------------------------------------------------------------- CLI

def add_arguments(p):
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                   help="all = cpu, plus cuda when available (default)")
    p.add_argument("--ops", default=",".join(OPS), help="comma list (default: %(default)s)")
    p.add_argument("--dtypes", default=None, help="comma list of " + ",".join(DTYPES) + " (default: all four)")
    p.add_argument("--sizes", default=None,
                   help="comma list of log2(numel), e.g. 16,20,24 (default CPU 12..26, CUDA 12..28)")
    p.add_argument("--models", default=None,
                   help="comma list of gpt2, gpt2:trunc, llama7b, llama7b:trunc, or 'none' "
                        "(default: " + ",".join(DEFAULT_MODELS) + ")")
    p.add_argument("--llama-layers", type=int, default=None,
                   help="decoder layers of the Llama-7B list (default: all 32 if memory allows, else a few)")
    p.add_argument("--quick", action="store_true", help="small sizes, fp32+bf16, gpt2 only, short timing")
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
    ops = _csv(args.ops)
    for op in ops:
        if op not in OPS:
            raise SystemExit(f"unknown op {op!r}; choose from {', '.join(OPS)}")
    dtypes = _csv(args.dtypes) if args.dtypes else (["float32", "bfloat16"] if args.quick else list(DTYPES))
    for dt in dtypes:
        if dt not in DTYPES:
            raise SystemExit(f"unknown dtype {dt!r}; choose from {', '.join(DTYPES)}")
    sizes = [int(s) for s in _csv(args.sizes)] if args.sizes else None
    if args.models is None:
        models = ["gpt2"] if args.quick else DEFAULT_MODELS
    else:
        models = [] if args.models == "none" else _csv(args.models)
    for m in models:
        try:
            parse_model(m)
        except ValueError as e:
            raise SystemExit(str(e))
    budget = args.budget if args.budget is not None else (0.1 if args.quick else 0.5)

    cases = build_cases(devices_for(args.device), ops, dtypes, sizes, models, args.quick, args.llama_layers)
    load0 = _loadavg()
    if load0 and load0 > 0.25 * (os.cpu_count() or 1):
        print(f"warning: load average {load0:.2f} on {os.cpu_count()} cores before the run: other work "
              "on this machine will distort the CPU timings", file=sys.stderr)
    t0 = time.perf_counter()
    rows = run(cases, budget, args.repeat, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    settings = {"ops": ops, "dtypes": dtypes, "sizes_log2": sizes, "models": models, "quick": args.quick,
                "repeat": args.repeat, "budget_s": budget, "wall_s": wall,
                "loadavg_1min_start": load0, "loadavg_1min_end": _loadavg(),
                "op_args": {k: list(v[0]) for k, v in OPS.items()}}
    print(bench_report.table(rows))
    os.makedirs(args.out, exist_ok=True)
    path_json = bench_report.write_json(rows, settings, args.out)
    print(f"\nwrote {path_json}")
    if not args.no_plot:
        path_png = bench_report.plot(rows, path_json[:-len(".json")] + ".png")
        if path_png:
            print(f"wrote {path_png}")
    print(f"{len(rows)} cases in {wall:.1f} s")
    return 0
