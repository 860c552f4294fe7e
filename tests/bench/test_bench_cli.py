"""python -m paramops bench (paramops/bench/): a quick run of every kind of case writes its
rows, tables and JSON; no speed is asserted here (speed is the bench's business)."""
import glob
import json
import os
import subprocess
import sys

from conftest import ROOT


def test_quick_run_writes_every_kind_of_row(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "paramops", "bench", "--ops", "normal_,fill_", "--dtypes", "float32", "--sizes", "12",
           "--models", "tiny:20:8", "--calls", "normal64,record,patched", "--builds", "cnn,tiny", "--tied", "albert12", "--steps", "albert12", "--budget", "0.01",
           "--repeat", "3", "--no-plot", "--no-progress", "--out", str(tmp_path), "--check"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for head in ("paramops us", "fused x", "init_module x", "x init", "fastest", "x pairwise", "tie_gradients ms"):
        assert head in r.stdout, head
    (path,) = glob.glob(str(tmp_path / "paramops-bench-*.json"))
    doc = json.load(open(path))
    rows = {(row["kind"], row["case"]): row for row in doc["rows"]}
    for c in ("normal64", "record"):
        assert rows[("call", c)]["paramops_us"] > 0 and rows[("call", c)]["torch_us"] > 0
    assert rows[("call", "patched")]["paramops_us"] > 0 and "modules" in rows[("call", "patched")]
    for b in ("cnn", "tiny"):
        row = rows[("build", b)]
        assert all(row[k + "_ms"] > 0 for k in ("torch", "fused", "patched", "reinit_torch", "init_module")), row
    for dt in ("float32", "bfloat16"):
        row = rows[("tied", "albert12")] if dt == "bfloat16" else [r for r in doc["rows"] if r["kind"] == "tied"
                                                                    and r["dtype"] == dt][0]
        assert all(row[k + "_ms"] > 0 for k in ("fused", "pairwise", "stack", "foreach")), row
        step = [r for r in doc["rows"] if r["kind"] == "step" and r["dtype"] == dt][0]
        assert step["plain_ms"] > 0 and step["tied_ms"] > 0 and step["low_ms"] > 0, step
    model = [row for row in doc["rows"] if row["kind"] == "model"][0]
    assert all(v.startswith("ok") for v in model["check"].values()), model["check"]
    assert {row["op"] for row in doc["rows"] if row["kind"] == "tensor"} == {"normal_", "fill_"}
    assert doc["settings"]["calls"] == ["normal64", "record", "patched"] and doc["backend_info"]["cpu"]
