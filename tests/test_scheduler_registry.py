"""The scheduler registry: built-ins, unknown names, and an out-of-tree plugin."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest

from tracesim.analysis.fgd import run_experiment
from tracesim.errors import TracesimError
from tracesim.models.registry import (
    BUILTIN_SCHEDULERS,
    ENTRY_POINT_GROUP,
    load_scheduler,
    scheduler_names,
)
from tracesim.models.schedulers.base import Scheduler
from tracesim.sim.cluster import ClusterState, PodRequest

PLUGINS = Path(__file__).resolve().parent / "plugins"


def test_builtins_load_and_implement_the_protocol():
    for name in ("random", "bestfit", "dotprod", "gpupacking", "gpuclustering", "fgd"):
        policy = load_scheduler(name)
        assert policy.name == name
        for method in ("filter", "score", "choose_gpus", "cache_key", "prepare"):
            assert callable(getattr(policy, method))
    assert set(BUILTIN_SCHEDULERS) <= set(scheduler_names())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(TracesimError) as err:
        load_scheduler("kube-defualt")
    msg = str(err.value)
    assert "kube-defualt" in msg and "fgd" in msg and "bestfit" in msg
    assert "\n" not in msg


@pytest.fixture
def demo_plugin(tmp_path, monkeypatch):
    """Install tests/plugins/tracesim_demo_plugin the way pip would: a dist-info directory
    with entry_points.txt on sys.path, which importlib.metadata discovers."""
    dist = tmp_path / "tracesim_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tracesim-demo-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndemo-firstfit = tracesim_demo_plugin:FirstFitPolicy\n"
        "demo-broken = tracesim_demo_plugin:NoSuchPolicy\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGINS))
    yield
    sys.modules.pop("tracesim_demo_plugin", None)


def test_plugin_is_discovered_through_entry_points(demo_plugin):
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert "demo-firstfit" in {ep.name for ep in eps}
    assert "demo-firstfit" in scheduler_names()
    policy = load_scheduler("demo-firstfit")
    # First fit through the framework: pods fill node 0 before node 1.
    cluster = ClusterState.from_arrays(["n0", "n1"], [4000, 4000], [2**30] * 2, [1, 1], ["T4"] * 2)
    sched = Scheduler(cluster, policy, np.random.default_rng(0))
    nodes = [sched.schedule(PodRequest(1500, 0, 1, 400)).node for _ in range(4)]
    assert nodes == [0, 0, 1, 1]


def test_broken_plugin_is_a_one_line_error(demo_plugin):
    with pytest.raises(TracesimError, match="cannot load tracesim_demo_plugin:NoSuchPolicy"):
        load_scheduler("demo-broken")


def _tiny_openb(folder: Path) -> Path:
    """A 3-node openb-format data folder (same columns as the published files)."""
    folder.mkdir()
    (folder / "openb_node_list_gpu_node.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        "node-0,32000,65536,2,T4\nnode-1,32000,65536,2,T4\nnode-2,64000,131072,4,V100M16\n"
    )
    rows = ["name,cpu_milli,memory_mib,num_gpu,gpu_milli"]
    shapes = [(4000, 1, 500), (2000, 1, 250), (8000, 1, 1000), (1000, 0, 0), (16000, 2, 1000)]
    for i in range(40):
        cpu, gpus, milli = shapes[i % len(shapes)]
        rows.append(f"pod-{i:03d},{cpu},1024,{gpus},{milli}")
    (folder / "openb_pod_list_default.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_plugin_runs_through_the_fill_experiment(demo_plugin, tmp_path):
    data = _tiny_openb(tmp_path / "data")
    result = run_experiment(["default"], ["demo-firstfit", "bestfit"], [1, 2], data_dir=data)
    runs = result.runs
    assert set(runs["policy"]) == {"demo-firstfit", "bestfit"}
    assert len(runs) == 4
    assert len(result.curves) == 4 * 131
    # Coarse buckets (one pod = several % of 8 GPUs) leave some empty: NaN, never invented.
    for _, curve in result.curves.groupby(["policy", "seed"]):
        alloc = curve["alloc_pct"].dropna().to_numpy()
        assert len(alloc) > 5
        assert (alloc >= 0).all() and (alloc <= 100).all()
        assert (np.diff(alloc) >= 0).all()  # nothing is ever deleted
        assert alloc[-1] > 0
