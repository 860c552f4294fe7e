"""pytest-benchmark suite for paramops (not part of ./dev.sh test).

Run from the repo root:  .venv/bin/python -m pytest bench --benchmark-only
The cases and the init loops come from paramops.bench.cases, shared with
`python -m paramops bench`.
"""
import os

import pytest
import torch


def pytest_benchmark_update_machine_info(config, machine_info):
    import paramops
    from paramops.bench import report
    meta = report.metadata()
    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["paramops_commit"] = meta["paramops_commit"]
    machine_info["paramops_backend"] = paramops.backend_info()
    try:  # CPU timings are only comparable on an idle machine
        machine_info["loadavg_1min"] = os.getloadavg()[0]
    except (OSError, AttributeError):
        pass


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield
