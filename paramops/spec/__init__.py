"""The stream spec: its generated constants (constants), exact IEEE arithmetic for Python
(fmath), the stream in torch ops (reference, docs/stream.md), and what each op accepts
(checks: the Python port of csrc/cpu/checks.cpp; trunc_normal_'s acceptance depends on the
stream's Phi, so the checks sit on the stream's math). Imports only paramops.core."""
