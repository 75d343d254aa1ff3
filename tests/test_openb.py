"""openb import: the published CSVs as they are, bad files, and the trace importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracesim.cli import main
from tracesim.errors import TracesimError
from tracesim.sources import openb
from tracesim.trace.reader import open_trace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alibaba-gpu-v2023"


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} absent; published at {openb.PUBLISHED_AT}")
    return path


def test_real_node_list():
    nodes = openb.read_nodes(data_file("openb_node_list_gpu_node.csv"))
    assert len(nodes) == 1213
    assert nodes["gpu"].sum() == 6212
    cluster = openb.build_cluster(nodes)
    assert cluster.gpu_capacity_milli == 6_212_000
    assert cluster.max_gpus == 8
    assert sorted(cluster.models.values) == sorted(set(nodes["model"]))
    # Codes do not depend on node order.
    shuffled = openb.build_cluster(nodes, np.random.default_rng(0).permutation(len(nodes)))
    assert shuffled.models.values == cluster.models.values


def test_real_pod_lists_full_and_multigpu():
    pods = openb.read_pods(data_file("openb_pod_list_default.csv"))
    assert len(pods) == 8152
    assert (pods["num_gpu"] * pods["gpu_milli"]).sum() == 6_086_800
    assert pods["scheduled_time"].isna().sum() == 897  # pending pods have none
    multi = openb.read_pods(data_file("openb_pod_list_multigpu50.csv"))  # only 5 columns
    assert "creation_time" not in multi and (multi["gpu_spec"] == "").all()
    assert len(multi) == 9061


def test_gpu_spec_with_bars_becomes_model_masks():
    nodes = openb.read_nodes(data_file("openb_node_list_gpu_node.csv"))
    pods = openb.read_pods(data_file("openb_pod_list_gpuspec33.csv"))
    cluster = openb.build_cluster(nodes)
    table = openb.pod_table(pods, cluster)
    spec = pods["gpu_spec"].to_numpy(object)
    row = int(np.flatnonzero(spec == "V100M16|V100M32")[0])
    expected = (1 << cluster.models.get("V100M16")) | (1 << cluster.models.get("V100M32"))
    assert table.model_mask[row] == expected
    assert ((table.model_mask != 0) == (spec != "")).all()


def test_unknown_model_in_spec_matches_no_node():
    nodes = openb.read_nodes(data_file("openb_node_list_gpu_node.csv"))
    cluster = openb.build_cluster(nodes)
    mask = openb.model_masks(np.array(["H100", ""], object), cluster)
    assert mask[0] == 1 << openb.UNKNOWN_MODEL_BIT and mask[1] == 0


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_missing_column_names_file_and_column(tmp_path):
    bad = _write(tmp_path / "pods.csv", "name,cpu_milli,num_gpu,gpu_milli\np0,1000,0,0\n")
    with pytest.raises(TracesimError, match=r"pods\.csv: column 'memory_mib' missing"):
        openb.read_pods(bad)


def test_non_numeric_value_names_file_column_and_line(tmp_path):
    bad = _write(
        tmp_path / "nodes.csv",
        "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,1024,2,T4\nn1,lots,1,1,T4\n",
    )
    with pytest.raises(TracesimError) as err:
        openb.read_nodes(bad)
    msg = str(err.value)
    assert "nodes.csv" in msg and "'cpu_milli'" in msg and "line 3" in msg and "'lots'" in msg
    assert "\n" not in msg


def test_inconsistent_gpu_share_is_rejected(tmp_path):
    bad = _write(
        tmp_path / "pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1,1,2,500\n"
    )
    with pytest.raises(TracesimError, match="gpu_milli"):
        openb.read_pods(bad)


def test_cli_bad_csv_is_one_line_exit_2(tmp_path, capsys):
    nodes = _write(tmp_path / "n.csv", "sn,cpu_milli\nx,1\n")
    pods = _write(tmp_path / "p.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n")
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "import",
                "alibaba-openb",
                "--nodes",
                str(nodes),
                "--pods",
                str(pods),
                "--out",
                str(tmp_path / "t"),
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "n.csv" in err and "memory_mib" in err
    assert err.count("\n") == 1


def test_import_default_trace(tmp_path):
    nodes_csv = data_file("openb_node_list_gpu_node.csv")
    pods_csv = data_file("openb_pod_list_default.csv")
    out = tmp_path / "trace"
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "import",
                "alibaba-openb",
                "--nodes",
                str(nodes_csv),
                "--pods",
                str(pods_csv),
                "--out",
                str(out),
            ]
        )
    assert exit_.value.code == 0
    trace = open_trace(out)
    assert trace.source_kind == "imported"
    assert trace.manifest["source"]["time_origin"] == openb.EPOCH.isoformat()
    ev = trace.events(categorical=False)
    pods = openb.read_pods(pods_csv)
    node_rows = ev[ev["kind"] == "Node"]
    assert len(node_rows) == 1213 and (node_rows["event_type"] == "LISTED").all()
    assert node_rows["alloc_gpu_count"].sum() == 6212
    assert (node_rows["alloc_gpu_milli"] == node_rows["alloc_gpu_count"] * 1000).all()
    pod_rows = ev[ev["kind"] == "Pod"]
    added = pod_rows[pod_rows["event_type"] == "ADDED"]
    assert len(added) == 8152
    assert added["req_gpu_milli"].sum() == 6_086_800  # total milli = num_gpu * gpu_milli
    assert len(pod_rows[pod_rows["event_type"] == "DELETED"]) == 8152
    assert len(pod_rows[pod_rows["event_type"] == "MODIFIED"]) == 8152 - 897
    assert (added["req_memory_bytes"].to_numpy() % 2**20 == 0).all()
    # Time-ordered, and each pod's ADDED comes first at its creation time.
    assert ev["ts"].is_monotonic_increasing
    first = pod_rows.drop_duplicates("name")
    assert (first["event_type"] == "ADDED").all()
    p0 = pods.iloc[1]
    row = added[added["name"] == p0["name"]].iloc[0]
    expected_us = openb.EPOCH_US + int(p0["creation_time"]) * 1_000_000
    assert row["ts"] == pd.Timestamp(expected_us, unit="us", tz="UTC")
