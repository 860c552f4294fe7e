"""python -m paramops bench: the command line of the benchmark."""
import os
import sys
import time

import torch

from . import report
from .calls import BUILDS, CALLS, call_cases
from .cases import DEFAULT_MODELS, DTYPES, OPS, QUICK_MODELS, WAYS, build_cases, devices_for, parse_model
from .run import run
from .tied import STEPS, TIED, tied_cases
from .timing import _loadavg

QUICK_BUILDS = ("tiny", "cnn")


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
    p.add_argument("--calls", default=None,
                   help="comma list of the call-path cases " + ",".join(CALLS) + ", or 'none' (default: all)")
    p.add_argument("--builds", default=None,
                   help="comma list of the model builds " + ",".join(BUILDS) + " (plain torch, fused_init, "
                        "patched, init_module), or 'none' (default: all; --quick: " + ",".join(QUICK_BUILDS) + ")")
    p.add_argument("--tied", default=None,
                   help="comma list of the tied-gradient cases " + ",".join(TIED) + " (float32 and bfloat16), "
                        "or 'none' (default: all; --quick: none)")
    p.add_argument("--steps", default=None,
                   help="comma list of the whole-backward-step cases " + ",".join(STEPS) + ", or 'none' "
                        "(default: all; --quick: none)")
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


def _csv(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def _names(arg, default, allowed, what):
    """A comma-list option: None gives `default`, 'none' nothing; unknown names exit."""
    names = list(default) if arg is None else ([] if arg == "none" else _csv(arg))
    for n in names:
        if n not in allowed:
            raise SystemExit(f"unknown {what} {n!r}; choose from {', '.join(allowed)}")
    return names


def main(args):
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

    calls = _names(args.calls, CALLS, CALLS, "call case")
    builds = _names(args.builds, QUICK_BUILDS if args.quick else BUILDS, BUILDS, "build")
    tied = _names(args.tied, () if args.quick else TIED, TIED, "tied case")
    steps = _names(args.steps, () if args.quick else STEPS, STEPS, "step case")
    cases = call_cases(calls, builds, args.llama_layers)
    cases += tied_cases(tied, steps, devices_for(args.device))
    cases += build_cases(devices_for(args.device), ops, dtypes, sizes, models, args.quick, args.llama_layers,
                         ways, args.check)
    load0 = _loadavg()
    if load0 and load0 > 0.25 * (os.cpu_count() or 1):
        print(f"warning: load average {load0:.2f} on {os.cpu_count()} cores before the run: other work "
              "on this machine will distort the CPU timings", file=sys.stderr)
    t0 = time.perf_counter()
    rows = run(cases, budget, args.repeat, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    settings = {"calls": calls, "builds": builds, "tied": tied, "steps": steps, "ops": ops, "dtypes": dtypes, "sizes_log2": sizes,
                "models": models, "ways": ways,
                "check": args.check, "quick": args.quick,
                "repeat": args.repeat, "budget_s": budget, "wall_s": wall,
                "loadavg_1min_start": load0, "loadavg_1min_end": _loadavg(),
                "op_args": {k: list(v[0]) for k, v in OPS.items()}}
    from .. import registration
    info = registration.backend_info()
    print(f"backends: cpu tensors {info['cpu']}, cuda tensors {registration.backend('cuda')} "
          f"(PARAMOPS_BACKEND={info['forced']})")
    print(report.table(rows))
    os.makedirs(args.out, exist_ok=True)
    path_json = report.write_json(rows, settings, args.out)
    print(f"\nwrote {path_json}")
    if not args.no_plot:
        path_png = report.plot(rows, path_json[:-len(".json")] + ".png")
        if path_png:
            print(f"wrote {path_png}")
        path_png = report.plot_models(rows, path_json[:-len(".json")] + "-models.png")
        if path_png:
            print(f"wrote {path_png}")
    print(f"{len(rows)} cases in {wall:.1f} s")
    return 0
