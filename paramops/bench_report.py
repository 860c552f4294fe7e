"""Reporting for paramops.bench: machine info, text table, JSON file, PNG plot."""
import datetime
import json
import os
import platform
import subprocess
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def table(rows):
    """Fixed-width text table, one line per row."""
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
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    left = 4  # first columns left-aligned, numbers right-aligned
    fmt = lambda cells: "  ".join(c.ljust(w) if i < left else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    out = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(x) for x in lines]
    errors = [(r, k) for r in rows for k in ("paramops_error", "init_error") if k in r]
    for r, k in errors:
        out.append(f"{k.split('_')[0]} {r['device']} {r['dtype']} {r['case']} {r['op']}: {r[k]}")
    out.append("x init = nn.init time / paramops time (same run); % fill_ = paramops GB/s as % of "
               "Tensor.fill_ GB/s on the same tensor(s); extra MB = peak memory beyond the tensor(s) "
               "during one paramops (init: nn.init) call.")
    return "\n".join(out)


def plot(rows, path):
    """GB/s vs log2(numel): one subplot per (device, op); paramops per dtype
    (solid), nn.init (dashed) and fill_ (dotted) in the same colour."""
    rows = [r for r in rows if r["kind"] == "tensor"]
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
