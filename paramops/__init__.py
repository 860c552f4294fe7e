"""paramops: fused, bit-reproducible parameter initialization for PyTorch.

    import paramops
    paramops.normal_(w, 0.0, 0.02)          # like torch.nn.init.normal_
    torch.ops.paramops.normal_(w, 0.0, 0.02, seed=1, stream=0, offset=0)

The stream (paramops stream v1, docs/stream.md) gives the same bits on every backend.
The layers, from the bottom (docs/architecture.md): core (codes, ext, seeds), the stream
spec (constants, fmath, reference, checks), the writers (backends), registration
(torch.ops.paramops), the public ops (ops), init and patching, the fused and model-level
modes (capture, model); paramops.bench sits on top.
"""
from . import registration  # noqa: F401  (defines torch.ops.paramops.* and registers the backends)
from .registration import backend_info
from .ops import constant_, draw_seed, fill_, generator_handle, multi_init_, normal_, trunc_normal_, uniform_
from . import init  # paramops.init: a drop-in torch.nn.init
from .patching import patch, patched, unpatch
from .tied import TiedGroup, find_tied, tied_grad_, tied_grads_
from .model import fused_init, init_module, materialize, stream_key
from .tying import TiedHandle, tie_gradients

__all__ = ["backend_info", "constant_", "draw_seed", "fill_", "generator_handle", "multi_init_", "normal_",
           "trunc_normal_", "uniform_"]
__all__ += ["init", "patch", "patched", "unpatch"]
__all__ += ["TiedGroup", "find_tied", "tied_grad_", "tied_grads_"]
__all__ += ["fused_init", "init_module", "materialize", "stream_key"]
__all__ += ["TiedHandle", "tie_gradients"]
__version__ = "0.1.0"
