"""Reporting of the benchmark: machine info, text tables, JSON file, PNG plots."""
import datetime
import json
import os
import platform
import subprocess
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def _git(*args):
    try:
        out = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def metadata():
    import paramops
    machine = {"platform": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "hostname": platform.node()}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name()
        machine["gpu_memory_gb"] = torch.cuda.get_device_properties(0).total_memory / 1e9
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain")  # untracked sources count too
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "triton": _version("triton"),
                     "cuda": torch.version.cuda, "paramops": getattr(paramops, "__version__", None)},
        "paramops_commit": commit,
        "paramops_dirty": bool(dirty) if dirty is not None else None,
        "backend_info": paramops.backend_info(),
        "argv": sys.argv,
    }


def write_json(rows, settings, out_dir):
    meta = metadata()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(out_dir, f"paramops-bench-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"schema": "paramops-bench/1", **meta, "settings": settings, "rows": rows}, f, indent=1)
    return path


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def _grid(head, lines, left):
    """Fixed-width lines: the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < left else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(x) for x in lines]


# model ways as in paramops.bench.cases.WAYS / WAY_KEYS (kept here so that old JSON rows print too)
_WAYS = (("nn.init", "init"), ("paramops", "paramops"), ("fused", "fused"), ("init_module", "init_module"),
         ("multi", "multi"))


def table(rows):
    """Fixed-width text tables: single-tensor rows one line each; then model rows, one line
    per model case with each way's ratio to the nn.init loop."""
    call_rows = [r for r in rows if r.get("kind") == "call"]
    build_rows = [r for r in rows if r.get("kind") == "build"]
    tied_rows = [r for r in rows if r.get("kind") == "tied"]
    step_rows = [r for r in rows if r.get("kind") == "step"]
    tensor_rows = [r for r in rows if r.get("kind") == "tensor" or (r.get("kind") == "model" and "ways" not in r)]
    model_rows = [r for r in rows if r.get("kind") == "model" and "ways" in r]
    out = []
    for part, fn in ((call_rows, call_table), (build_rows, build_table), (tied_rows, tied_table),
                     (step_rows, step_table), (tensor_rows, _tensor_table), (model_rows, model_table)):
        if part:
            out += ([""] if out else []) + fn(part)
    return "\n".join(out)


def call_table(rows):
    """The call path: microseconds per call, and torch's time over paramops' (>= 1: not slower)."""
    head = ["case", "paramops us", "torch us", "x torch", "note"]
    lines = []
    for r in rows:
        note = ""
        if r["case"] == "patched":
            note = f"{r.get('modules')} modules, transformers {'imported' if r.get('transformers') else 'absent'}"
        lines.append([r["label"], _f(r.get("paramops_us"), ".2f"), _f(r.get("torch_us"), ".2f"),
                      _f(r.get("x"), ".2f"), note])
    out = _grid(head, lines, 1)
    for r in rows:
        for k in ("paramops_error", "torch_error"):
            if k in r:
                out.append(f"{r['case']} {k}: {r[k]}")
    out.append("Call path, same run, medians: normal64 = paramops.init.normal_ vs torch.nn.init.normal_; "
               "record = torch.nn.init.normal_ recorded inside paramops.fused_init() (flush untimed) vs the "
               "eager torch.nn.init.normal_; patched = one `with paramops.patched(): pass`.")
    return out


def build_table(rows):
    """Model builds: plain torch against fused_init and patched(); a re-init through torch
    against paramops.init_module. x = torch's time over paramops' (>= 1: not slower)."""
    head = ["build", "dtype", "params", "torch ms", "fused x", "patched x", "re-init ms", "init_module x"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["label"], r["dtype"], "-", "ERR", "-", "-", "-", "-"])
            continue
        lines.append([r["label"], r["dtype"], f"{r.get('params', 0) / 1e6:.2f}M", _f(r.get("torch_ms"), ".2f"),
                      _x(r, "fused"), _x(r, "patched"), _f(r.get("reinit_torch_ms"), ".2f"), _x(r, "init_module")])
    out = _grid(head, lines, 2)
    for r in rows:
        ms = ", ".join(f"{k} {r[k + '_ms']:.2f}" for k in ("torch", "fused", "patched", "reinit_torch", "init_module")
                       if r.get(k + "_ms") is not None)
        if ms:
            out.append(f"ms {r['label']}: {ms}")
        for k in [k for k in r if k.endswith("error")]:
            out.append(f"{r['label']} {k}: {r[k]}")
    out.append("Builds, same run, samples interleaved: construct the model with plain torch, inside "
               "paramops.fused_init(), inside paramops.patched(); re-init = the model's own init logic "
               "through torch, init_module = the same through paramops.init_module.")
    return out


def _errors(rows):
    return [f"{r['label']} {r['dtype']} {k}: {r[k]}" for r in rows for k in r if k.endswith("error")]


def tied_table(rows):
    """Tied-gradient sums: the fused op against autograd's pairwise adds and two other ways;
    x = their time over the fused op's (>= 1: the fused op is faster)."""
    head = ["device", "dtype", "case", "MB", "fused ms", "GB/s", "pairwise ms", "x pairwise", "x stack",
            "x foreach"]
    lines = [[r["device"], r["dtype"], r["label"], _f(r.get("mb"), ".0f"), _f(r.get("fused_ms"), ".2f"),
              _f(r.get("fused_gbps"), ".1f"), _f(r.get("pairwise_ms"), ".2f"), _x(r, "pairwise"), _x(r, "stack"),
              _x(r, "foreach")] for r in rows]
    out = _grid(head, lines, 3) + _errors(rows)
    out.append("Tied sums, same run, samples interleaved: fused = paramops.tied_grads_ (one op call for the case's "
               "weights; GB/s counts K reads and one write); pairwise = torch.add then add_ in the tensor's dtype "
               "(autograd's pattern); stack = torch.stack(...).sum(0); foreach = torch._foreach_add_.")
    return out


def step_table(rows):
    """Whole backward steps: plain autograd against paramops.tie_gradients (x >= 1: not slower)."""
    head = ["device", "dtype", "case", "plain ms", "tie_gradients ms", "x plain", "low_memory ms", "x plain"]
    lines = [[r["device"], r["dtype"], r["label"], _f(r.get("plain_ms"), ".1f"), _f(r.get("tied_ms"), ".1f"),
              _x(r, "tied"), _f(r.get("low_ms"), ".1f"), _x(r, "low")] for r in rows]
    out = _grid(head, lines, 3) + _errors(rows)
    out.append("Steps, same run: zero_grad, forward and backward of the ALBERT-like stack, the same weights, "
               "without and with paramops.tie_gradients over its three weights (holding the gradients, and "
               "low_memory=True), three models with the same weights.")
    return out


def _tensor_table(rows):
    head = ["device", "dtype", "case", "op", "paramops ms", "GB/s", "nn.init ms", "GB/s", "x init",
            "% fill_", "fill_ GB/s", "extra MB", "init extra MB", "tensor MB"]
    lines = []
    for r in rows:
        p_ms = _f(r.get("paramops_ms"), ".3f") if "paramops_error" not in r else "ERR"
        i_ms = _f(r.get("init_ms"), ".3f") if "init_error" not in r else "ERR"
        lines.append([r["device"], r["dtype"], r["case"], r["op"], p_ms, _f(r.get("paramops_gbps"), ".2f"),
                      i_ms, _f(r.get("init_gbps"), ".2f"), _f(r.get("speedup"), ".2f"),
                      _f(r.get("pct_fill"), ".1f"), _f(r.get("fill_gbps"), ".2f"),
                      _f(r.get("paramops_extra_mb"), ".1f"), _f(r.get("init_extra_mb"), ".1f"),
                      _f(r["tensor_mb"], ".1f")])
    out = _grid(head, lines, 4)
    errors = [(r, k) for r in rows for k in ("paramops_error", "init_error") if k in r]
    for r, k in errors:
        out.append(f"{k.split('_')[0]} {r['device']} {r['dtype']} {r['case']} {r['op']}: {r[k]}")
    out.append("x init = nn.init time / paramops time (same run); % fill_ = paramops GB/s as % of "
               "Tensor.fill_ GB/s on the same tensor(s); extra MB = peak memory beyond the tensor(s) "
               "during one paramops (init: nn.init) call.")
    return out


def _x(r, key):
    if key + "_error" in r:
        return "ERR"
    v = r.get(key + "_x")
    return "-" if v is None else f"{v:.2f}x"


def model_table(rows):
    """Model cases: nn.init loop time, each way's same-run ratio to it, the fastest way."""
    ways = [(w, k) for w, k in _WAYS if any(w in r.get("ways", ()) for r in rows)]
    head = (["device", "dtype", "case", "weights", "nn.init ms"] + [f"{w} x" for w, k in ways if k != "init"]
            + ["fastest", "ms", "GB/s", "% fill_", "fill_ GB/s", "extra MB", "init extra MB", "tensor MB"])
    lines = []
    for r in rows:
        i_ms = _f(r.get("init_ms"), ".1f") if "init_error" not in r else "ERR"
        best = r.get("best_way")
        bk = dict(_WAYS).get(best)
        extras = [r.get(k + "_extra_mb") for w, k in ways if k != "init" and r.get(k + "_extra_mb") is not None]
        lines.append([r["device"], r["dtype"], r["case"], r["op"].rstrip("_"), i_ms]
                     + [_x(r, k) for w, k in ways if k != "init"]
                     + [best or "-", _f(r.get("best_ms"), ".2f"), _f(r.get(f"{bk}_gbps"), ".2f"),
                        _f(r.get(f"{bk}_pct_fill"), ".1f"), _f(r.get("fill_gbps"), ".2f"),
                        _f(max(extras) if extras else None, ".1f"), _f(r.get("init_extra_mb"), ".1f"),
                        _f(r["tensor_mb"], ".1f")])
    out = _grid(head, lines, 4)
    for r in rows:
        ms = ", ".join(f"{w} {r[k + '_ms']:.2f}" for w, k in ways if r.get(k + "_ms") is not None)
        if ms:
            out.append(f"ms {r['device']} {r['dtype']} {r['case']} {r['op']}: {ms}"
                       + (f", fill_ {r['fill_ms']:.2f}" if r.get("fill_ms") is not None else ""))
    for r in rows:
        for w, k in ways:
            if k + "_error" in r:
                out.append(f"{w} error {r['device']} {r['dtype']} {r['case']} {r['op']}: {r[k + '_error']}")
    for r in rows:
        if "check" in r:
            res = ", ".join(f"{w}: {v}" for w, v in r["check"].items())
            out.append(f"check {r['device']} {r['dtype']} {r['case']} {r['op']}: {res}")
    out.append("Model cases, same tensors, same run, samples interleaved: nn.init = Python loop of "
               "torch.nn.init calls; paramops = the loop through paramops.init; fused = the nn.init loop "
               "in `with paramops.fused_init():`; init_module = paramops.init_module on a module whose "
               "reset_parameters() runs the nn.init loop; multi = one paramops.multi_init_ call. "
               "x = nn.init time / that way's time; fastest = the fastest paramops way, its ms, GB/s and "
               "% of the fill_ loop's GB/s; extra MB = the largest peak memory beyond the tensors of "
               "one call of a paramops way.")
    return out


def plot(rows, path):
    """GB/s vs log2(numel): one subplot per (device, op); paramops per dtype
    (solid), nn.init (dashed) and fill_ (dotted) in the same colour."""
    rows = [r for r in rows if r["kind"] == "tensor" and r.get("log2n") is not None]  # model rows: table only
    if not rows:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return None
    devices = sorted({r["device"] for r in rows})
    ops = list(dict.fromkeys(r["op"] for r in rows))
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    colors = dict(zip(dtypes, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(len(devices), len(ops), figsize=(4.2 * len(ops), 3.6 * len(devices)),
                             squeeze=False, sharey="row")
    for i, dev in enumerate(devices):
        for j, op in enumerate(ops):
            ax = axes[i][j]
            for dt in dtypes:
                rs = sorted((r for r in rows if r["device"] == dev and r["op"] == op and r["dtype"] == dt),
                            key=lambda r: r["log2n"])
                for key, style, lab in (("paramops_gbps", "-o", "paramops"), ("init_gbps", "--", "nn.init"),
                                        ("fill_gbps", ":", "fill_")):
                    pts = [(r["log2n"], r[key]) for r in rs if r.get(key)]
                    if pts:
                        ax.plot(*zip(*pts), style, color=colors[dt], label=f"{lab} {dt}", markersize=3)
            ax.set_title(f"{op} ({dev})")
            ax.set_xlabel("log2(numel)")
            ax.set_xticks(sorted({r["log2n"] for r in rows if r["device"] == dev}))
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            if j == 0:
                ax.set_ylabel("GB/s written")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    # one legend column per dtype (paramops, nn.init, fill_), below the plots
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=max(1, len(dtypes)),
               fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_models(rows, path):
    """Model cases: each way's speed-up over the nn.init loop (same run), one bar group per
    case. None when there are no model rows or no matplotlib."""
    rows = [r for r in rows if r.get("kind") == "model" and "ways" in r]
    if not rows:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return None
    ways = [(w, k) for w, k in _WAYS if k != "init" and any(w in r["ways"] for r in rows)]
    labels = [f"{r['case']} {r['dtype']} {r['op'].rstrip('_')} ({r['device']})" for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.45 * len(rows) * max(1, len(ways)) / 2))
    h = 0.8 / max(1, len(ways))
    for j, (w, k) in enumerate(ways):
        ys = [i + (j - (len(ways) - 1) / 2) * h for i in range(len(rows))]
        xs = [r.get(k + "_x") for r in rows]
        ax.barh([y for y, x in zip(ys, xs) if x], [x for x in xs if x], height=h, label=w, color=f"C{j}")
        for y, x, r in zip(ys, xs, rows):
            txt = f" {x:.2f}x" if x else (" error" if k + "_error" in r else "")
            if txt:
                ax.text(x or 1.0, y, txt, va="center", fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    xs = [r.get(k + "_x") for r in rows for _, k in ways if r.get(k + "_x")] or [1.0]
    lo, hi = min(min(xs), 1.0) / 1.5, max(max(xs), 1.0) * 2.5
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000) if lo <= t <= hi]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("x nn.init loop (same run; > 1 is faster)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
