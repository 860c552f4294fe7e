"""Triton kernels for paramops (imported as paramops.kernels)."""
