"""A short GPU workload for compute-sanitizer (bench/gpu_check.sh): every op and dtype on
odd sizes, offsets and strided views, and one mixed multi_init_, through the backend that
PARAMOPS_BACKEND selects for CUDA tensors; then the bits are compared with the CPU kernels,
so a kernel that writes out of bounds or misses elements also fails here.

    compute-sanitizer --tool memcheck python bench/gpu_sanitize.py
"""
import os
import sys

import torch

import paramops

ARGS = {"uniform_": (-0.5, 2.0), "normal_": (0.3, 1.7), "trunc_normal_": (0.1, 1.3, -2.0, 2.5)}
DEV = os.environ.get("PARAMOPS_TEST_DEVICE", "cuda")  # cpu: a dry run of this script
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def bits(t):
    return t.contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def main():
    bad = 0
    for op, args in ARGS.items():
        for dtype in DTYPES:
            for n, off in ((1, 0), (5, 3), (4099, 1), (70001, (1 << 32) + 1)):
                g = torch.full((n,), float("nan"), dtype=dtype, device=DEV)
                c = torch.full((n,), float("nan"), dtype=dtype)
                getattr(torch.ops.paramops, op)(g, *args, seed=n, stream=7, offset=off)
                getattr(torch.ops.paramops, op)(c, *args, seed=n, stream=7, offset=off)
                bad += not torch.equal(bits(g.cpu()), bits(c))
            g = torch.full((61, 37), float("nan"), dtype=dtype, device=DEV).t()[::2]
            c = torch.full((61, 37), float("nan"), dtype=dtype).t()[::2]
            getattr(torch.ops.paramops, op)(g, *args, seed=1, stream=2, offset=3)
            getattr(torch.ops.paramops, op)(c, *args, seed=1, stream=2, offset=3)
            bad += not torch.equal(bits(g._base.cpu()), bits(c._base))
    shapes = [(i * 37 + 1) % 3001 for i in range(50)]
    kinds = ["uniform", "normal", "trunc_normal", "fill"]
    params = [(-1.0, 1.0), (0.0, 0.02), (0.0, 0.02, -0.04, 0.04), (0.5,)]
    gs = [torch.full((n,), float("nan"), dtype=DTYPES[i % 4], device=DEV) for i, n in enumerate(shapes)]
    cs = [torch.full((n,), float("nan"), dtype=DTYPES[i % 4]) for i, n in enumerate(shapes)]
    for ts in (gs, cs):
        paramops.multi_init_(ts, [kinds[i % 4] for i in range(50)], [params[i % 4] for i in range(50)],
                             seeds=list(range(50)))
    bad += sum(not torch.equal(bits(g.cpu()), bits(c)) for g, c in zip(gs, cs))
    if DEV == "cuda":
        torch.cuda.synchronize()
    print(f"cuda backend: {paramops.backend_info()['cuda']}; {bad} mismatching outputs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
