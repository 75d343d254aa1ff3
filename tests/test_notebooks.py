"""The analysis notebooks run top to bottom (on small inputs) with the library as installed."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
OPENB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alibaba-gpu-v2023"


def execute(name: str, env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def test_notebooks_are_committed_without_outputs() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.slow
def test_explore_trace_notebook() -> None:
    nb = execute("01-explore-trace.ipynb", {})
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "200 nodes" in text


@pytest.mark.slow
def test_gpu_fragmentation_notebook() -> None:
    if not (OPENB / "openb_pod_list_default.csv").exists():
        pytest.skip(
            f"needs the openb trace in {OPENB} (alibaba/clusterdata, cluster-trace-gpu-v2023)"
        )
    nb = execute(
        "03-gpu-fragmentation.ipynb",
        {"TRACESIM_NOTEBOOK_QUICK": "1", "TRACESIM_OPENB_DIR": str(OPENB)},
    )
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "fewest unallocated GPUs at x=100: fgd" in text


@pytest.mark.slow
def test_find_the_bottleneck_notebook(tmp_path: Path) -> None:
    nb = execute(
        "02-find-the-bottleneck.ipynb",
        {
            "TRACESIM_NOTEBOOK_QUICK": "1",
            "TRACESIM_NOTEBOOK_OUT": str(tmp_path),
            "TRACESIM_JOBS": "2",
        },
    )
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "6 runs in" in text
    assert "2019-era (50-200 nodes)" in text and "current (50-200 nodes)" in text
    assert "share of etcd write bytes by category" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the sweep curves and the utilisation over time
