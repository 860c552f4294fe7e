"""The writers: what writes the values once an op's kernel has checked the call, drawn its
seed and bumped the version counter (csrc/cpu/writer.h).

* reference: the Python reference (paramops/spec/reference.py), any device torch runs on;
* triton: the Triton kernels (paramops/backends/kernels/), CUDA tensors (CPU ones under
  TRITON_INTERPRET=1);
* python: the Python port of the ops' C++ kernels (checks, seed, bump, then a writer), for
  an installation without the extension;
* dims: the tensor geometry the Triton writer and the Python port's multi table share.

The C++ writers (CPU generators, CUDA kernels) live in csrc/. paramops/registration.py
decides which writer serves which device.
"""
