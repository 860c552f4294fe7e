"""Timers and the runner of the benchmark cases: same-run medians after a warm-up, samples of
the ways of one case taken in turns; CUDA events on a GPU; peak memory beyond the tensors."""
import math
import os
import re
import sys
import time

import torch

LLAMA_LAYERS = 32


def numel_of(params):
    return sum(math.prod(shape) for _, shape, _, _ in params)


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
    from .cases import llama7b_params

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



# --------------------------------------------------------------------------- running
def run_case(case, refs, budget_s=0.5, repeat=None):
    """Measure one case; refs caches the fill_ reference per ref_key. Returns a row dict."""
    if case.kind == "model":
        return run_model_case(case, refs, budget_s, repeat)
    if case.kind in ("call", "build"):
        return case.run(budget_s, repeat)
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


def _err(e):
    return f"{type(e).__name__}: {e}".splitlines()[0][:200]


def run_model_case(case, refs, budget_s=0.5, repeat=None):
    """Measure a model case: every way of case.ways and the fill_ loop, interleaved, on
    the same tensors. Row keys per way (prefix WAY_KEYS[way]): _ms, _gbps, _extra_mb,
    _repeat, _x (nn.init time / its time), _pct_fill, or _error. speedup and pct_fill
    are those of the paramops.init loop, as in the single-tensor rows."""
    from . import cases
    row = {"kind": case.kind, "device": case.device, "dtype": str(case.dtype).replace("torch.", ""),
           "case": case.label, "log2n": None, "model": case.model, "op": case.op,
           "numel": case.numel, "tensor_mb": case.nbytes / 2**20, "tensors": len(case.params),
           "ways": list(case.ways)}
    if case.shape:
        row["shape"] = list(case.shape)
    data = case.allocate()
    try:
        if case.check:
            from .cases import check_ways
            row["check"] = check_ways(case.params, case.op, data, case.ways)
        fns = case.way_fns(data)
        for way, f in list(fns.items()):
            if isinstance(f, Exception):
                row[cases.WAY_KEYS[way] + "_error"] = _err(f)
                del fns[way]
        if case.ref_key not in refs:
            fns["fill_"] = lambda: cases.fill_all_fn(data)
        res = time_fns(fns, case.device, budget_s, repeat, mem=PeakMemory(case.device))
        if "fill_" in res:
            r = res.pop("fill_")
            refs[case.ref_key] = r[0] if isinstance(r, tuple) else None
        t_fill = refs.get(case.ref_key)
        if t_fill:
            row["fill_ms"], row["fill_gbps"] = t_fill * 1e3, case.nbytes / t_fill / 1e9
        for way, r in res.items():
            key = cases.WAY_KEYS[way]
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
            key = cases.WAY_KEYS[way]
            ms = row.get(key + "_ms")
            if ms is None:
                continue
            if t_init:
                row[key + "_x"] = t_init / ms
            if t_fill:
                row[key + "_pct_fill"] = 100.0 * t_fill * 1e3 / ms
            if way != "nn.init" and (best is None or ms < row[cases.WAY_KEYS[best] + "_ms"]):
                best = way
        if best is not None:
            row["best_way"], row["best_ms"] = best, row[cases.WAY_KEYS[best] + "_ms"]
            row["best_x"] = row.get(cases.WAY_KEYS[best] + "_x")
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

def _loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


