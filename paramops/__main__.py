"""Command line: `python -m paramops {bench,info}`."""
import argparse
import json
import sys


def _info(args):
    import torch

    import paramops
    info = {"paramops": getattr(paramops, "__version__", None), "torch": torch.__version__,
            "cuda_available": torch.cuda.is_available(), "backend_info": paramops.backend_info()}
    print(json.dumps(info, indent=2))
    return 0


def main(argv=None):
    from . import bench

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
