"""The writers: what writes the values once an op's kernel has checked the call, drawn its
seed and bumped the version counter (csrc/cpu/writer.h).

* reference: the Python reference (paramops/_reference.py), any device torch runs on;
* triton: the Triton kernels (paramops.kernels), CUDA tensors (CPU ones under
  TRITON_INTERPRET=1);
* kernels: the Python port of the ops' C++ kernels (checks, seed, bump, then a writer), for
  an installation without the extension.

The C++ writers (CPU generators, CUDA kernels) live in csrc/. paramops/_register.py
decides which writer serves which device.
"""
