"""The runner of the benchmark: one row per case, every way of a case timed in the same run."""
import sys

import torch

from . import cases
from .timing import PeakMemory, _err, _loadavg, time_fn, time_fns


def run_case(case, refs, budget_s=0.5, repeat=None):
    """Measure one case; refs caches the fill_ reference per ref_key. Returns a row dict."""
    if case.kind == "model":
        return run_model_case(case, refs, budget_s, repeat)
    if case.kind in ("call", "build", "tied", "step"):
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
            row["check"] = cases.check_ways(case.params, case.op, data, case.ways)
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

