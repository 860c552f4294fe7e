"""The package imports and works through the Python reference without the extension."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import sys, warnings
{setup}
import torch, paramops
info = paramops.backend_info()
assert info["cpu"] == "python", info
t = paramops.normal_(torch.empty(10, dtype=torch.float64), seed=42)
print(info["forced"], t[:2].tolist())
"""


def _run(setup, env_extra):
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    code = _SCRIPT.format(setup=setup)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)


def test_forced_python_backend():
    r = _run("", {"PARAMOPS_BACKEND": "python"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("python")
    assert "C++ extension not available" not in r.stderr


def test_missing_extension_warns_and_falls_back():
    # make `from . import _C` fail as if the extension had not been built
    r = _run("sys.modules['paramops._C'] = None", {"PARAMOPS_BACKEND": "auto"})
    assert r.returncode == 0, r.stderr
    assert "C++ extension not available" in r.stderr


def test_bad_backend_name():
    r = _run("", {"PARAMOPS_BACKEND": "gpu-magic"})
    assert r.returncode != 0 and "PARAMOPS_BACKEND must be one of" in r.stderr
