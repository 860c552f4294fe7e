"""The compiled extension paramops._C, loaded once (guarded, as torchao loads its .so).

With it, every op's checks, seed draw and version bump run in its C++ kernels (csrc/cpu),
whichever backend writes the values; without it (not built, or PARAMOPS_BACKEND=python),
paramops runs on Python ports of the same checks (paramops/spec/checks.py) and the Python
reference, with the same messages and bits.

PARAMOPS_BACKEND (read here, once): auto | cpp | cuda | triton | python. "python" does
not load the extension; "cpp" and "cuda" require it (an import error if it does not load);
the rest of the choice is paramops/registration.py's.
"""
import os
import warnings

CHOICES = ("auto", "cpp", "cuda", "triton", "python")

FORCED = os.environ.get("PARAMOPS_BACKEND", "auto").strip().lower() or "auto"
if FORCED not in CHOICES:
    raise ValueError(f"PARAMOPS_BACKEND must be one of {', '.join(CHOICES)}, got {FORCED!r}")

C = None  # paramops._C, or None
ERROR = None  # why it did not load
if FORCED != "python":
    try:
        from .. import _C as C
    except (ImportError, OSError) as e:
        if FORCED in ("cpp", "cuda"):
            raise ImportError(f"PARAMOPS_BACKEND={FORCED} but paramops._C failed to load: {e}") from e
        ERROR = str(e)
        warnings.warn(f"paramops: C++ extension not available ({e}); using the Python reference "
                      "(build it with ./dev.sh or `python setup.py build_ext --inplace`)", stacklevel=3)
