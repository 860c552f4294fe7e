"""Backend choice (paramops/_backend.py): PARAMOPS_BACKEND, the fallbacks, and `info`.

Each case runs in a fresh interpreter, since the choice is made once at import."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import sys, json
{setup}
import torch, paramops
from paramops import _backend
print(json.dumps({{"info": paramops.backend_info(), "cuda": _backend.cuda_backend(),
                  "cuda_kernel": torch._C._dispatch_has_kernel_for_dispatch_key("paramops::normal_", "CUDA")}}))
"""


def _run(backend, setup=""):
    env = dict(os.environ, PARAMOPS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, "-c", _SCRIPT.format(setup=setup)], env=env, capture_output=True,
                       text=True, cwd=ROOT)
    return r, (json.loads(r.stdout.splitlines()[-1]) if r.returncode == 0 else None)


def _cuda_built():
    from paramops import _backend
    return _backend.backend_info()["available"]["cuda"]


def test_auto_order():
    r, out = _run("auto")
    assert r.returncode == 0, r.stderr
    avail = out["info"]["available"]
    want = "cuda" if avail["cuda"] else "triton" if avail["triton"] else "python"
    assert out["cuda"] == want
    assert out["cuda_kernel"]  # CUDA tensors always have a kernel, whichever backend
    assert out["info"]["forced"] == "auto"


def test_auto_without_triton_takes_the_reference_for_cuda():
    if _cuda_built():
        pytest.skip("the CUDA extension comes before Triton")
    r, out = _run("auto", "sys.modules['triton'] = None")
    assert r.returncode == 0, r.stderr
    assert out["cuda"] == "python" and out["info"]["available"]["triton"] is False
    assert out["cuda_kernel"]


@pytest.mark.parametrize("backend", ["python", "triton", "cpp"])
def test_forced(backend):
    r, out = _run(backend)
    assert r.returncode == 0, r.stderr
    assert out["info"]["forced"] == backend
    assert out["info"]["cpu"] == ("python" if backend == "python" else "cpp")
    if backend != "cpp":
        assert out["cuda"] == backend
    assert out["cuda_kernel"]


def test_forced_triton_without_triton_fails():
    r, _ = _run("triton", "sys.modules['triton'] = None")
    assert r.returncode != 0 and "PARAMOPS_BACKEND=triton but triton is not installed" in r.stderr


def test_forced_cuda_without_cuda_kernels_fails():
    if _cuda_built():
        pytest.skip("this build has CUDA kernels")
    r, _ = _run("cuda")
    assert r.returncode != 0 and "PARAMOPS_BACKEND=cuda but paramops._C has no CUDA kernels" in r.stderr


def test_forced_cuda_serves_cuda_with_the_extension():
    if not _cuda_built():
        pytest.skip("the extension has no CUDA kernels here")
    r, out = _run("cuda")
    assert r.returncode == 0, r.stderr
    assert out["cuda"] == "cuda" and out["cuda_kernel"]


def test_info_command():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, "-m", "paramops", "info"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend_info"]["cpu"] in ("cpp", "python")
    assert info["cuda_tensors_served_by"] in ("cuda", "triton", "python")
    assert set(info["backend_info"]["available"]) == {"cpp", "cuda", "triton", "python"}
