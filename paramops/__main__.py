"""Command line: `python -m paramops {bench,info}`."""
import argparse
import json
import sys


def _info(args):
    """What serves each device, and what else is there (PARAMOPS_BACKEND can pick it)."""
    import os

    import torch

    import paramops
    from paramops import registration
    from paramops.bench.report import _version

    info = {"paramops": getattr(paramops, "__version__", None), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "triton": _version("triton"),
            "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
            "cuda_available": torch.cuda.is_available(), "backend_info": paramops.backend_info(),
            "cuda_tensors_served_by": registration.backend("cuda")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        info["gpu"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                       "memory_gb": round(p.total_memory / 1e9, 1)}
    print(json.dumps(info, indent=2))
    return 0


def main(argv=None):
    from .bench import cli as bench

    p = argparse.ArgumentParser(prog="python -m paramops", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{bench,info}")
    b = sub.add_parser("bench", help="benchmark paramops against torch.nn.init",
                       description="Time paramops ops against torch.nn.init and Tensor.fill_; "
                                   "print a table, write JSON and a PNG plot.")
    bench.add_arguments(b)
    b.set_defaults(func=bench.main)
    i = sub.add_parser("info", help="print which backend serves each device")
    i.set_defaults(func=_info)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
