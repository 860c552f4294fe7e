"""Triton kernels for paramops (imported as paramops.backends.kernels)."""
