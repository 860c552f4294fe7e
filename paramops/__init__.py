"""paramops: fused, bit-reproducible parameter initialization for PyTorch.

    import paramops
    paramops.normal_(w, 0.0, 0.02)          # like torch.nn.init.normal_
    torch.ops.paramops.normal_(w, 0.0, 0.02, seed=1, stream=0, offset=0)

The stream (paramops stream v1, docs/stream.md) gives the same bits on every backend.
"""
from . import _ops  # noqa: F401  (defines torch.ops.paramops.*)
from ._backend import backend_info
from .ops import constant_, draw_seed, fill_, normal_, trunc_normal_, uniform_
from . import init  # paramops.init: a drop-in torch.nn.init
from ._patch import patch, patched, unpatch
from .multi import multi_init_
from .model import fused_init, init_module, materialize, stream_key

__all__ = ["backend_info", "constant_", "draw_seed", "fill_", "normal_", "trunc_normal_", "uniform_"]
__all__ += ["init", "patch", "patched", "unpatch"]
__all__ += ["fused_init", "init_module", "materialize", "stream_key"]
__all__ += ["multi_init_"]
__version__ = "0.1.0"
