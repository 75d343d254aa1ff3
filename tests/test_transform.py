"""Trace transforms: scale (clones keep per-node and per-workload statistics, names and uids are
fresh and consistent, order and determinism hold), window (the state at the cut is the replay of
the events before it) and filter_kinds; bad input is one line and exit 2."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracesim import open_trace
from tracesim.errors import TracesimError
from tracesim.sources.synth import SynthConfig, synthesize
from tracesim.trace.transform import filter_kinds, scale, state_at, window

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alibaba-gpu-v2023"
_SCRIPT = ROOT / ".venv" / "bin" / "tracesim"
TRACESIM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tracesim"]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 nodes, 10 minutes, with a rollout and a burst of Job pods."""
    root = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(nodes=30, duration_s=600, seed=3, burst_pods=150, rollout_fraction=0.5)
    return synthesize(cfg, root / "small")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    return synthesize(SynthConfig(nodes=8, duration_s=240, seed=1), root / "tiny")


@pytest.fixture(scope="module")
def tripled(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scaled") / "x3"
    scale(small, 90, out, seed=4)
    return out


def _events(path: Path) -> pd.DataFrame:
    return open_trace(path).events(categorical=False)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted((path / "events").iterdir()):
        h.update(f.read_bytes())
    return h.hexdigest()


def _nodes(df: pd.DataFrame) -> set[str]:
    return set(df.loc[df.kind == "Node", "name"])


def _lifecycles(df: pd.DataFrame, kind: str = "Pod") -> Counter:
    """Multiset of per-object event sequences (type, phase, bound?, requests), in trace order."""
    d = df[df.kind == kind].sort_values("seq")
    bound = d["node_name"].notna() if "node_name" in d else False
    shape = list(
        zip(
            d.event_type,
            d.phase.fillna(""),
            bound,
            d.req_cpu_milli.fillna(-1),
            d.size_bytes.fillna(-1),
            strict=True,
        )
    )
    per_obj = pd.Series(shape, index=d.index).groupby(d.uid.to_numpy(), sort=False).agg(tuple)
    return Counter(per_obj.tolist())


def _scaled_counter(c: Counter, f: int) -> Counter:
    return Counter({k: v * f for k, v in c.items()})


def _assert_consistent(df: pd.DataFrame) -> None:
    """Invariants of any scaled trace: time order, references, no collisions, object order."""
    seq = df.sort_values("seq")
    ts = seq.ts.to_numpy()
    assert (ts[1:] >= ts[:-1]).all(), "output is not time-ordered"
    nodes = _nodes(df)
    pods = df[df.kind == "Pod"]
    assert set(pods.node_name.dropna()) <= nodes, "a pod is bound to a node that does not exist"
    leases = df[(df.kind == "Lease") & (df.namespace == "kube-node-lease")]
    assert set(leases.name) <= nodes
    assert (leases.lease_holder == leases.name).all()
    objs = df[df.event_type != "GAP"]
    # one uid names one (kind, namespace, name); a (kind, namespace, name) is one live object
    per_uid = objs.groupby("uid")[["kind", "namespace", "name"]].nunique(dropna=False)
    assert (per_uid <= 1).all().all(), "a uid names two objects"
    per_name = objs.groupby(["kind", "namespace", "name"], dropna=False).uid.nunique()
    dup = per_name[per_name > 1]
    # names may be reused over time (never in synth): none here
    assert dup.empty, f"names with several uids: {dup.head()}"
    # Events name existing pods
    ev = df[df.kind == "Event"]
    if len(ev):
        pod_keys = set(zip(pods.namespace, pods.name, strict=True))
        about = ev.name.str.rsplit(".", n=1).str[0]
        assert all(k in pod_keys for k in zip(ev.namespace, about, strict=True))
    # resource versions renumbered in time order
    rv = seq.resource_version.dropna().astype(np.int64).to_numpy()
    assert (np.diff(rv) > 0).all()
    start = df.ts.min()
    assert (df.loc[df.event_type == "LISTED", "ts"] == start).all()


# -- scale: integer factors ---------------------------------------------------------------------
def test_scale_by_three_multiplies_every_statistic(small: Path, tripled: Path) -> None:
    a, b = _events(small), _events(tripled)
    assert len(_nodes(b)) == 3 * len(_nodes(a)) == 90
    count_a = a.groupby(["kind", "event_type"]).size()
    count_b = b.groupby(["kind", "event_type"]).size()
    pd.testing.assert_series_equal(count_b, count_a * 3)
    # lifecycle shapes (each object's own event order included) are the originals, x3
    for kind in ("Pod", "Node", "Lease", "Event"):
        assert _lifecycles(b, kind) == _scaled_counter(_lifecycles(a, kind), 3), kind
    # per node: pods bound and events per kind, as multisets over nodes
    for df in (a, b):
        df["node_ref"] = df.node_name.where(df.kind == "Pod", df.name)
    pods_a = a[a.kind == "Pod"].groupby("node_ref").uid.nunique()
    pods_b = b[b.kind == "Pod"].groupby("node_ref").uid.nunique()
    assert Counter(pods_b.tolist()) == _scaled_counter(Counter(pods_a.tolist()), 3)
    for kind in ("Node", "Lease"):
        per_a = a[a.kind == kind].groupby("node_ref").size()
        per_b = b[b.kind == kind].groupby("node_ref").size()
        assert Counter(per_b.tolist()) == _scaled_counter(Counter(per_a.tolist()), 3)
    # per workload: a ReplicaSet of k pods becomes 3 ReplicaSets of k pods
    wa = a[a.kind == "Pod"].groupby("owner_name").uid.nunique()
    wb = b[b.kind == "Pod"].groupby("owner_name").uid.nunique()
    ds = {"kube-proxy", "node-exporter", "fluent-bit"}  # one DaemonSet covers every node
    assert Counter(wb.drop(list(ds)).tolist()) == _scaled_counter(
        Counter(wa.drop(list(ds)).tolist()), 3
    )
    assert (wb[list(ds)] == 3 * wa[list(ds)]).all()
    # requests distribution
    ra = Counter(map(tuple, a[a.kind == "Pod"].drop_duplicates("uid")[["req_cpu_milli"]].values))
    rb = Counter(map(tuple, b[b.kind == "Pod"].drop_duplicates("uid")[["req_cpu_milli"]].values))
    assert rb == _scaled_counter(ra, 3)
    _assert_consistent(b)


def test_clone_names_structure_and_node_references(tripled: Path) -> None:
    b = _events(tripled)
    nodes = b[b.kind == "Node"]
    # hostname label follows the node's new name
    host = nodes.labels.map(
        lambda ls: next(x for x in ls if x.startswith("kubernetes.io/hostname="))
    )
    assert (host == "kubernetes.io/hostname=" + nodes.name).all()
    pods = b[(b.kind == "Pod") & (b.owner_kind == "ReplicaSet")]
    cloned = pods[pods.name.str.contains(r"-c2-", regex=True)]
    assert len(cloned)
    # the tag sits after the deployment name, in the pod and in its ReplicaSet
    assert (cloned.owner_name.str.contains("-c2-")).all()
    assert all(n.startswith(o + "-") for n, o in zip(cloned.name, cloned.owner_name, strict=True))
    # a cloned pod runs on a node of its own clone
    bound = cloned.node_name.dropna()
    assert bound.str.endswith("-c2").all()
    # uids are UUIDs, fresh
    assert b.uid.str.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    ).all()


def test_manifest_records_parent_factor_seed(small: Path, tripled: Path) -> None:
    m = open_trace(tripled).manifest
    assert m["source"]["kind"] == "derived"
    assert m["source"]["transform"] == "scale"
    assert m["source"]["parent"]["path"] == str(small.resolve())
    assert m["source"]["factor"] == 3.0 and m["source"]["seed"] == 4
    assert m["cluster"]["nodes"] == 90
    assert m["status"] == "complete"


def test_scale_by_one_gives_the_same_events(small: Path, tmp_path: Path) -> None:
    scale(small, 30, tmp_path / "same", seed=9)
    a, b = _events(small), _events(tmp_path / "same")
    drop = ["seq", "resource_version"]
    pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))


def test_same_seed_identical_files_other_seed_differs(tiny: Path, tmp_path: Path) -> None:
    scale(tiny, 20, tmp_path / "a", seed=1)
    scale(tiny, 20, tmp_path / "b", seed=1)
    scale(tiny, 20, tmp_path / "c", seed=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_chunking_does_not_change_the_output(tiny: Path, tmp_path: Path) -> None:
    scale(tiny, 20, tmp_path / "big", seed=1)
    scale(tiny, 20, tmp_path / "small", seed=1, chunk_rows=997)
    drop = ["seq"]
    pd.testing.assert_frame_equal(
        _events(tmp_path / "big").drop(columns=drop),
        _events(tmp_path / "small").drop(columns=drop),
    )


def test_jitter_spreads_clones_but_keeps_listed_rows(tiny: Path, tmp_path: Path) -> None:
    scale(tiny, 40, tmp_path / "j", seed=1, jitter_s=0.5)
    a, b = _events(tiny), _events(tmp_path / "j")
    adds = b[(b.kind == "Pod") & (b.event_type == "ADDED")]
    # clones of one ADDED event do not share its microsecond
    assert adds.ts.nunique() > 0.9 * len(adds)
    shift = (b.ts.max() - a.ts.max()).total_seconds()
    assert 0 <= shift <= 0.5


def test_rescaling_a_scaled_trace_avoids_name_collisions(tiny: Path, tmp_path: Path) -> None:
    scale(tiny, 16, tmp_path / "x2", seed=1)
    scale(tmp_path / "x2", 32, tmp_path / "x4", seed=1)
    df = _events(tmp_path / "x4")
    assert len(_nodes(df)) == 32
    _assert_consistent(df)
    assert open_trace(tmp_path / "x4").manifest["source"]["name_tag"] != "-c<clone>"


# -- scale: fractional and down ------------------------------------------------------------------
def test_fractional_factor_clones_a_sample(small: Path, tmp_path: Path) -> None:
    scale(small, 45, tmp_path / "x1.5", seed=2)
    a, b = _events(small), _events(tmp_path / "x1.5")
    assert len(_nodes(b)) == 45
    _assert_consistent(b)
    pods_a = a[a.kind == "Pod"].uid.nunique()
    pods_b = b[b.kind == "Pod"].uid.nunique()
    assert 1.3 * pods_a <= pods_b <= 1.7 * pods_a
    leases = b[b.kind == "Lease"].groupby("name").size()
    assert (
        Counter(leases.tolist()).keys()
        <= Counter(a[a.kind == "Lease"].groupby("name").size()).keys()
    )
    # the partial clone keeps the node shapes: allocatable CPU of the 15 extra nodes
    shapes_a = a[a.kind == "Node"].drop_duplicates("name").alloc_cpu_milli.value_counts()
    shapes_b = b[b.kind == "Node"].drop_duplicates("name").alloc_cpu_milli.value_counts()
    assert ((shapes_b - shapes_a).fillna(0).abs() <= np.ceil(shapes_a * 0.5 + 1)).all()


def test_down_scaling_samples_nodes_and_workloads(small: Path, tmp_path: Path) -> None:
    scale(small, 10, tmp_path / "down", seed=2)
    a, b = _events(small), _events(tmp_path / "down")
    assert len(_nodes(b)) == 10
    assert _nodes(b) <= _nodes(a)  # clone 0 keeps the original names
    _assert_consistent(b)
    ratio = b[b.kind == "Pod"].uid.nunique() / a[a.kind == "Pod"].uid.nunique()
    assert 0.2 <= ratio <= 0.5
    # every DaemonSet pod kept is on a kept node, one per DaemonSet per node
    ds = b[(b.kind == "Pod") & (b.owner_kind == "DaemonSet")].drop_duplicates("uid")
    assert ds.groupby(["owner_name", "node_name"]).size().max() == 1


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(nodes=st.integers(min_value=1, max_value=30), seed=st.integers(0, 2**31))
def test_any_size_gives_a_consistent_trace(
    tiny: Path, tmp_path: Path, nodes: int, seed: int
) -> None:
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "out"  # examples may repeat
    facts = scale(tiny, nodes, out, seed=seed)
    df = _events(out)
    assert len(_nodes(df)) == nodes == facts["nodes"]["out"]
    _assert_consistent(df)


def test_openb_import_scales(tmp_path: Path) -> None:
    nodes_csv = DATA / "openb_node_list_gpu_node.csv"
    pods_csv = DATA / "openb_pod_list_default.csv"
    for path in (nodes_csv, pods_csv):
        if not path.is_file():
            pytest.skip(f"{path} absent; published at alibaba/clusterdata cluster-trace-gpu-v2023")
    from tracesim.sources.openb import import_trace

    import_trace(nodes_csv, pods_csv, tmp_path / "openb")
    facts = scale(tmp_path / "openb", 2000, tmp_path / "openb2k", seed=0)
    a, b = _events(tmp_path / "openb"), _events(tmp_path / "openb2k")
    assert len(_nodes(b)) == 2000 and facts["factor"] == pytest.approx(2000 / 1213)
    assert b[b.kind == "Pod"].node_name.isna().all()  # openb pods are not bound
    ratio = b[b.kind == "Pod"].uid.nunique() / a[a.kind == "Pod"].uid.nunique()
    assert ratio == pytest.approx(2000 / 1213, rel=0.02)
    assert open_trace(tmp_path / "openb2k").manifest["cluster"]["gpus"] > 6212
    _assert_consistent(b)


# -- bad input -----------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRACESIM, *args], capture_output=True, text=True, timeout=120)


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from tracesim.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0), capsys.readouterr().err


def test_bad_input_is_one_line_and_exit_2(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "f").write_text("x")
    cases = [
        ("scale", str(tiny), "--nodes", "0", "--out", str(tmp_path / "o1")),
        ("scale", str(tmp_path), "--nodes", "5", "--out", str(tmp_path / "o2")),
        ("scale", str(tiny), "--nodes", "5", "--out", str(tmp_path / "exists")),
        ("scale", str(tiny), "--nodes", "5", "--out", str(tiny)),
        ("scale", str(tiny), "--nodes", "5", "--jitter", "soon", "--out", str(tmp_path / "o3")),
        ("window", str(tiny), "--start", "later", "--out", str(tmp_path / "o4")),
        ("window", str(tiny), "--start", "2m", "--end", "1m", "--out", str(tmp_path / "o5")),
    ]
    for args in cases:  # in-process: the CLI's own error handling, without start-up costs
        code, stderr = _main(capsys, *args)
        assert code == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
    # and once through the console script: no traceback, one line
    proc = _cli(*cases[1])
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_library_rejects_bad_nodes(tiny: Path, tmp_path: Path) -> None:
    for bad in (0, -3, 2.5):
        with pytest.raises(TracesimError, match="--nodes"):
            scale(tiny, bad, tmp_path / "x")  # type: ignore[arg-type]


def test_cli_scale_and_window_write_traces(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(
        capsys, "scale", str(tiny), "--nodes", "12", "--out", str(tmp_path / "s"), "-q"
    )
    assert code == 0, err
    assert len(_nodes(_events(tmp_path / "s"))) == 12
    args = ("window", str(tiny), "--start", "1m", "--end", "3m", "--kinds", "Pod")
    code, err = _main(capsys, *args, "--out", str(tmp_path / "w"))
    assert code == 0, err
    w = _events(tmp_path / "w")
    assert set(w.kind) == {"Pod"}
    assert (w.ts >= _events(tiny).ts.min() + pd.Timedelta(minutes=1)).all()


# -- window and filter ---------------------------------------------------------------------------
def _replay(df: pd.DataFrame, cut: pd.Timestamp) -> dict[tuple, dict]:
    """Independent reference: apply the events before ``cut`` one by one."""
    state: dict[tuple, dict] = {}
    for row in df[df.ts < cut].sort_values("seq").to_dict("records"):
        if row["event_type"] == "GAP":
            continue
        key = (row["kind"], row["namespace"], row["name"], row["uid"])
        if row["event_type"] == "DELETED":
            state.pop(key, None)
        else:
            state[key] = row
    return state


def test_window_state_at_the_cut_is_the_replay(small: Path, tmp_path: Path) -> None:
    a = _events(small)
    t0 = a.ts.min() + pd.Timedelta(minutes=4)
    t1 = a.ts.min() + pd.Timedelta(minutes=7)
    window(small, t0.isoformat(), t1.isoformat(), tmp_path / "w")
    w = _events(tmp_path / "w")
    listed = w[w.event_type == "LISTED"]
    assert (listed.ts == t0).all()
    expected = _replay(a, t0)
    got = {(r.kind, r.namespace, r.name, r.uid): r for r in listed.itertuples()}
    assert set(got) == set(expected)

    def same(x: object, y: object) -> bool:
        return (pd.isna(x) and pd.isna(y)) if pd.isna(x) or pd.isna(y) else x == y

    for key, row in expected.items():
        g = got[key]._asdict()
        for col in ("phase", "node_name", "resource_version", "size_bytes", "terminating"):
            assert same(g[col], row[col]), (key, col, g[col], row[col])
    # the events of the window are the parent's, unchanged and in order
    inside = a[(a.ts >= t0) & (a.ts < t1)].drop(columns=["seq"]).reset_index(drop=True)
    rest = w[w.event_type != "LISTED"].drop(columns=["seq"]).reset_index(drop=True)
    rest = rest.iloc[len(rest) - len(inside) :].reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, inside)
    m = open_trace(tmp_path / "w").manifest
    assert m["source"]["transform"] == "window" and m["source"]["kind"] == "derived"


def test_state_at_trace_start_is_empty_and_window_of_all_is_identity(
    tiny: Path, tmp_path: Path
) -> None:
    a = _events(tiny)
    assert state_at(tiny, a.ts.min()).num_rows == 0
    window(tiny, None, None, tmp_path / "all")
    pd.testing.assert_frame_equal(_events(tmp_path / "all"), a)


def test_filter_kinds_keeps_only_those_kinds(tiny: Path, tmp_path: Path) -> None:
    filter_kinds(tiny, ["Pod", "Node"], tmp_path / "f")
    a, f = _events(tiny), _events(tmp_path / "f")
    assert set(f.kind) == {"Pod", "Node"}
    keep = a[a.kind.isin(["Pod", "Node"])].drop(columns=["seq"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(f.drop(columns=["seq"]), keep)
    with pytest.raises(TracesimError):
        filter_kinds(tiny, [], tmp_path / "g")
