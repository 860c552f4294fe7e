"""Registration (paramops/registration.py): the ops' schemas and fake kernels, the backend
choice (PARAMOPS_BACKEND, the fallbacks), the one way kernels are registered, and `info`.

The choice is made once at import, so those cases run in a fresh interpreter."""
import json
import os
import subprocess
import sys

import pytest
import torch

import paramops
from paramops import registration
from conftest import HAS_CPP, ROOT, assert_bitwise, requires_cpp, served_by

OPS = list(registration.SCHEMAS)

_SCRIPT = """
import sys, json
{setup}
import torch, paramops
from paramops import registration
def kernel(key):
    return all(torch._C._dispatch_has_kernel_for_dispatch_key("paramops::" + op, key) for op in registration.SCHEMAS)
print(json.dumps({{"info": paramops.backend_info(), "cuda": registration.backend("cuda"),
                  "ext": "paramops._C" in sys.modules and sys.modules["paramops._C"] is not None,
                  "keys": {{k: kernel(k) for k in ("CPU", "SparseCPU", "CUDA", "SparseCUDA", "Meta")}}}}))
"""


def _run(backend, setup=""):
    env = dict(os.environ, PARAMOPS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, "-c", _SCRIPT.format(setup=setup)], env=env, capture_output=True,
                       text=True, cwd=ROOT)
    return r, (json.loads(r.stdout.splitlines()[-1]) if r.returncode == 0 else None)


def test_auto_order():
    r, out = _run("auto")
    assert r.returncode == 0, r.stderr
    avail = out["info"]["available"]
    want = "cuda" if avail["cuda"] else "triton" if avail["triton"] else "python"
    assert out["cuda"] == want and out["info"]["forced"] == "auto"
    assert all(out["keys"].values()), out["keys"]  # every device has every op, whichever backend


def test_auto_without_triton_takes_the_reference_for_cuda():
    if registration.cuda_built():
        pytest.skip("the CUDA extension comes before Triton")
    r, out = _run("auto", "sys.modules['triton'] = None")
    assert r.returncode == 0, r.stderr
    assert out["cuda"] == "python" and out["info"]["available"]["triton"] is False
    assert out["keys"]["CUDA"]


def test_without_the_extension():
    """A missing extension under auto: a warning, then the Python kernels for every device."""
    r, out = _run("auto", "sys.modules['paramops._C'] = None")
    assert r.returncode == 0, r.stderr
    assert "C++ extension not available" in r.stderr
    assert out["info"]["cpu"] == "python" and not out["ext"] and all(out["keys"].values())
    assert "cpp_error" in out["info"]


@pytest.mark.parametrize("backend", ["python", "triton", "cpp"])
def test_forced(backend):
    r, out = _run(backend)
    assert r.returncode == 0, r.stderr
    assert out["info"]["forced"] == backend
    assert out["info"]["cpu"] == ("python" if backend == "python" else "cpp")
    assert out["ext"] == (backend != "python")  # python: the extension is not loaded at all
    if backend != "cpp":
        assert out["cuda"] == backend
    assert all(out["keys"].values())


def test_forced_cpp_without_the_extension_fails():
    r, _ = _run("cpp", "sys.modules['paramops._C'] = None")
    assert r.returncode != 0 and "PARAMOPS_BACKEND=cpp but paramops._C failed to load" in r.stderr


def test_forced_triton_without_triton_fails():
    r, _ = _run("triton", "sys.modules['triton'] = None")
    assert r.returncode != 0 and "PARAMOPS_BACKEND=triton but triton is not installed" in r.stderr


def test_forced_cuda_without_cuda_kernels_fails():
    if registration.cuda_built():
        pytest.skip("this build has CUDA kernels")
    r, _ = _run("cuda")
    assert r.returncode != 0 and "PARAMOPS_BACKEND=cuda but paramops._C has no CUDA kernels" in r.stderr


def test_forced_cuda_serves_cuda_with_the_extension():
    if not registration.cuda_built():
        pytest.skip("the extension has no CUDA kernels here")
    r, out = _run("cuda")
    assert r.returncode == 0, r.stderr
    assert out["cuda"] == "cuda" and out["keys"]["CUDA"]


def test_bad_choice_fails():
    r, _ = _run("fast")
    assert r.returncode != 0 and "PARAMOPS_BACKEND must be one of auto, cpp, cuda, triton, python" in r.stderr


def test_info_command():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, "-m", "paramops", "info"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend_info"]["cpu"] in ("cpp", "python")
    assert info["cuda_tensors_served_by"] in ("cuda", "triton", "python")
    assert set(info["backend_info"]["available"]) == {"cpp", "cuda", "triton", "python"}


# ------------------------------------------------------------------ one mechanism
def _registered_by(op, key):
    """The file the dispatch table names for op's kernel at `key` ('' if none)."""
    dump = torch._C._dispatch_dump(f"paramops::{op}")
    line = [ln for ln in dump.splitlines() if ln.startswith(key + ":")]
    return line[0] if line else ""


def test_one_mechanism_for_every_kernel():
    """Each op's CPU and sparse CPU kernels come from one place: csrc/cpu/register.cpp with the
    extension (whatever writer serves them), the Python kernels without it; Autograd is a
    fallthrough for every op; Meta is the fake kernel. Nothing else registers paramops."""
    want = os.path.join("cpu", "register.cpp") if HAS_CPP else "registration.py"
    for op in OPS:
        for key in ("CPU", "SparseCPU", "SparseCsrCPU", "CUDA"):
            assert want in _registered_by(op, key) or "python" in _registered_by(op, key).lower(), (op, key)
        assert "fallthrough" in _registered_by(op, "Autograd[alias]"), op
    dump = torch._C._dispatch_dump("paramops::normal_")
    assert "CompositeExplicitAutograd" not in dump and "CompositeImplicitAutograd" not in dump
    assert not hasattr(torch.ops.paramops, "_multi_table")


@requires_cpp
def test_switching_writers_keeps_the_kernel():
    """register(device, backend) swaps the writer behind the same C++ kernel: the checks, the
    seed draw and the version bump stay the kernel's; the bits are the same."""
    want = paramops.normal_(torch.empty(1001, dtype=torch.float64), 0.5, 2.0, seed=9, offset=3)
    for backend in ("python", "triton"):
        with served_by("cpu", backend):
            assert registration.backend("cpu") == backend
            t = paramops.normal_(torch.empty(1001, dtype=torch.float64), 0.5, 2.0, seed=9, offset=3)
            assert_bitwise(t, want)
            torch.manual_seed(0)
            state = torch.get_rng_state()
            with pytest.raises(ValueError, match="paramops.normal_: std must be >= 0"):
                paramops.normal_(t, 0.0, -1.0)
            assert torch.equal(torch.get_rng_state(), state)  # refused: no seed drawn
            v = t._version
            paramops.uniform_(t)
            assert t._version == v + 1 and not torch.equal(torch.get_rng_state(), state)
        assert registration.backend("cpu") == "cpp"
        with served_by("cpu", backend):
            u = paramops.normal_(torch.empty(1001, dtype=torch.float64), 0.5, 2.0, seed=9, offset=3)
        assert_bitwise(u, want)


def test_register_refuses_a_bad_device():
    if HAS_CPP:
        from paramops.core import ext
        with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'xpu'"):
            ext.C.register("xpu", None)


def test_schemas_take_seed_and_generator():
    """The ops draw their own seed: seed and generator (a handle) are optional arguments."""
    for op in ("uniform_", "normal_", "trunc_normal_"):
        schema = str(getattr(torch.ops.paramops, op).default._schema)
        assert "int? seed=None" in schema and "int? generator=None" in schema, schema
        assert torch.Tag.nondeterministic_seeded in getattr(torch.ops.paramops, op).default.tags
    assert "bool draw_seeds=False" in str(torch.ops.paramops.multi_init_.default._schema)
