"""The Triton kernels as a writer (the interface of csrc/cpu/py_writer.cpp, see
paramops/backends/reference.py): paramops.backends.kernels, imported on first use (importing triton
is slow, and under TRITON_INTERPRET=1 it must be set before the import). They write the
bits the C++ CPU kernels write, on any device Triton runs on; on CPU tensors only under
TRITON_INTERPRET=1 (how the tests run them).
"""
_kernels = None


def kernels():
    global _kernels
    if _kernels is None:
        from . import kernels as k
        from .kernels import multi, random, tied  # noqa: F401  (loads the submodules)

        _kernels = k
    return _kernels


class Writer:
    name = "triton"

    def random(self, t, kind, p, seed, stream, offset):
        kernels().random.write_(t, kind, p, seed, stream, offset)

    def multi(self, tensors, table):
        kernels().multi.launch(tensors, table)

    def tied(self, groups):
        kernels().tied.launch(groups)
