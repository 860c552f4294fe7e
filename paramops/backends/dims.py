"""Tensor geometry shared by the writers that walk strides themselves."""


def coalesce(t):
    """(size, stride) of t's dims with size-1 dims dropped and mergeable neighbours merged
    (as csrc/cpu/driver.cpp walks a strided tensor)."""
    dims = []
    for size, stride in zip(t.shape, t.stride()):
        if size == 1:
            continue
        if dims and dims[-1][1] == size * stride:
            dims[-1] = (dims[-1][0] * size, stride)
        else:
            dims.append((size, stride))
    return dims
