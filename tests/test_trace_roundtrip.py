"""Objects -> rows -> TraceWriter -> open_trace: the same rows come back, in order, typed.

Also: filters equal a pandas filter of the full read, third-party readers (pandas, pyarrow,
DuckDB) read the events without tracesim, and a writer that dies leaves a readable trace.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracesim.trace import SCHEMA, TraceWriter, open_trace
from tracesim.trace.objects import object_row
from tracesim.trace.schema import COLUMN_NAMES, EVENT_TYPES

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
T0_US = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
ROOT = Path(__file__).resolve().parents[1]


# -- object strategies ---
# DNS labels; cheaper to draw than st.from_regex, which dominated the run time.
WORDS = ["a", "web", "trainer", "kube-system", "node-1", "x9", "ip-10-0-1-2", "zz-top-0"]
dns_label = st.sampled_from(WORDS) | st.builds(
    "{}-{}".format, st.sampled_from(WORDS), st.integers(0, 10**6)
)
label_key = st.one_of(dns_label, st.builds(lambda p, n: f"{p}.io/{n}", dns_label, dns_label))
labels = st.dictionaries(label_key, dns_label | st.just(""), max_size=4)
free_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
cpu = st.integers(0, 128_000).flatmap(
    lambda m: st.sampled_from([f"{m}m", f"{m // 1000}", f"{m / 1000}"])
)
memory = st.integers(0, 2**20).flatmap(
    lambda k: st.sampled_from([f"{k}Ki", f"{k * 1024}", f"{k // 1024}Mi", f"{k / 1024:.3f}Mi"])
)
resources = st.fixed_dictionaries(
    {}, optional={"cpu": cpu, "memory": memory, "nvidia.com/gpu": st.integers(0, 8).map(str)}
)
rfc3339 = st.integers(0, 10**13).map(
    lambda us: (T0 + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")
)


def metadata(namespaced: bool) -> st.SearchStrategy[dict[str, Any]]:
    required = {"name": dns_label}
    if namespaced:
        required["namespace"] = dns_label
    return st.fixed_dictionaries(
        required,
        optional={
            "uid": st.uuids().map(str),
            "resourceVersion": st.integers(1, 2**40).map(str),
            "labels": labels,
            "annotations": st.dictionaries(label_key, free_text, max_size=2),
            "ownerReferences": st.lists(
                st.fixed_dictionaries(
                    {"kind": st.sampled_from(["ReplicaSet", "Job", "Node"]), "name": dns_label},
                    optional={"controller": st.booleans()},
                ),
                max_size=2,
            ),
        },
    )


containers = st.lists(
    st.fixed_dictionaries(
        {"name": dns_label},
        optional={
            "resources": st.fixed_dictionaries(
                {}, optional={"requests": resources, "limits": resources}
            )
        },
    ),
    min_size=1,
    max_size=3,
)
toleration = st.fixed_dictionaries(
    {},
    optional={
        "key": label_key,
        "operator": st.sampled_from(["Exists", "Equal"]),
        "value": dns_label,
        "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]),
        "tolerationSeconds": st.integers(0, 3600),
    },
)
pods = st.fixed_dictionaries(
    {
        "kind": st.just("Pod"),
        "apiVersion": st.just("v1"),
        "metadata": metadata(True),
        "spec": st.fixed_dictionaries(
            {"containers": containers},
            optional={
                "initContainers": containers,
                "nodeName": dns_label,
                "schedulerName": st.sampled_from(["default-scheduler", "volcano"]),
                "priority": st.integers(-(2**31), 2**31 - 1),
                "priorityClassName": dns_label,
                "nodeSelector": labels,
                "tolerations": st.lists(toleration, max_size=3),
                "overhead": resources,
            },
        ),
        "status": st.fixed_dictionaries(
            {},
            optional={
                "phase": st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
                "qosClass": st.sampled_from(["Guaranteed", "Burstable", "BestEffort"]),
            },
        ),
    }
)
taint = st.fixed_dictionaries(
    {"key": label_key, "effect": st.sampled_from(["NoSchedule", "NoExecute"])},
    optional={"value": dns_label},
)
nodes = st.fixed_dictionaries(
    {
        "kind": st.just("Node"),
        "apiVersion": st.just("v1"),
        "metadata": metadata(False),
        "spec": st.fixed_dictionaries(
            {}, optional={"unschedulable": st.booleans(), "taints": st.lists(taint, max_size=3)}
        ),
        "status": st.fixed_dictionaries(
            {},
            optional={
                "allocatable": st.fixed_dictionaries(
                    {},
                    optional={
                        "cpu": cpu,
                        "memory": memory,
                        "pods": st.integers(0, 1000).map(str),
                        "nvidia.com/gpu": st.integers(0, 8).map(str),
                    },
                ),
                "conditions": st.lists(
                    st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(["Ready", "MemoryPressure"]),
                            "status": st.sampled_from(["True", "False", "Unknown"]),
                        }
                    ),
                    max_size=2,
                ),
            },
        ),
    }
)
leases = st.fixed_dictionaries(
    {
        "kind": st.just("Lease"),
        "apiVersion": st.just("coordination.k8s.io/v1"),
        "metadata": metadata(True),
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "holderIdentity": dns_label,
                "leaseDurationSeconds": st.integers(1, 3600),
                "renewTime": rfc3339,
            },
        ),
    }
)
others = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.just("ConfigMap"), "apiVersion": st.just("v1"), "metadata": metadata(True)},
        optional={"data": st.dictionaries(dns_label, free_text, max_size=3)},
    ),
    st.fixed_dictionaries(
        {"kind": st.just("Namespace"), "apiVersion": st.just("v1"), "metadata": metadata(False)}
    ),
)
objects = st.one_of(pods, nodes, leases, others)
OBJECT_EVENTS = ["ADDED", "MODIFIED", "DELETED", "LISTED"]


@st.composite
def event_rows(draw: st.DrawFn, keep_raw: bool, max_size: int = 40) -> list[dict[str, Any]]:
    """Rows in time order (equal timestamps allowed), including GAP marker rows."""
    n = draw(st.integers(1, max_size))
    ts = T0_US
    rows = []
    for _ in range(n):
        ts += draw(st.sampled_from([0, 1, 999, 250_000, 700_000]))
        if draw(st.integers(0, 19)) == 0:
            kind = draw(st.sampled_from(["Pod", "Node", "Lease"]))
            rows.append(
                {"ts": ts, "kind": kind, "event_type": "GAP", "detail": "410 Gone", "relist": False}
            )
            continue
        obj = draw(objects)
        row = object_row(obj, draw(st.sampled_from(OBJECT_EVENTS)), ts, keep_raw=keep_raw)
        row["relist"] = draw(st.booleans())
        rows.append(row)
    return rows


# -- helpers ---
def expected_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What reading back must give, built without Arrow: full columns, seq, datetimes."""
    out = []
    for seq, row in enumerate(rows):
        rec = {name: row.get(name) for name in COLUMN_NAMES}
        rec["seq"] = seq
        for col in ("ts", "lease_renew_time"):
            if rec[col] is not None:
                rec[col] = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=rec[col])
        out.append(rec)
    return out


def write_trace(
    path: Path,
    rows: list[dict[str, Any]],
    cuts: list[int],
    flushes: list[bool],
    **options: Any,
) -> Path:
    with TraceWriter(path, "synthetic", **options) as writer:
        start = 0
        for cut, flush in zip([*cuts, len(rows)], [*flushes, False], strict=False):
            writer.write_rows(rows[start:cut])
            start = cut
            if flush:
                writer.flush()
    return path


def check_dtypes(df: pd.DataFrame) -> None:
    for field in SCHEMA:
        if field.name not in df.columns:
            continue
        dtype = df[field.name].dtype
        if pa.types.is_int64(field.type):
            assert dtype == pd.Int64Dtype(), field.name
        elif pa.types.is_int32(field.type):
            assert dtype == pd.Int32Dtype(), field.name
        elif pa.types.is_boolean(field.type):
            assert dtype == pd.BooleanDtype(), field.name
        elif pa.types.is_timestamp(field.type):
            assert isinstance(dtype, pd.DatetimeTZDtype), field.name
            assert str(dtype.tz) == "UTC" and dtype.unit == "us", field.name


# -- the round trip ---
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), keep_raw=st.booleans(), journal=st.booleans())
def test_round_trip(data: st.DataObject, keep_raw: bool, journal: bool) -> None:
    rows = data.draw(event_rows(keep_raw))
    n = len(rows)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    flushes = data.draw(st.lists(st.booleans(), min_size=len(cuts), max_size=len(cuts)))
    rotate_bytes = data.draw(st.sampled_from([1_500, 6_000, 10**9]))
    rotate_s = data.draw(st.sampled_from([0.5, 3.0, 1e6]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_trace(
            Path(tmp) / "t",
            rows,
            cuts,
            flushes,
            journal=journal,
            rotate_bytes=rotate_bytes,
            rotate_s=rotate_s,
            options={"keep_raw": keep_raw},
        )
        trace = open_trace(path)
        assert trace.complete and not trace.journals
        assert list((path / "events").glob("*.journal")) == []
        assert list((path / "events").glob("*.tmp")) == []
        table = trace.to_arrow()
        assert table.schema == SCHEMA
        assert table.to_pylist() == expected_records(rows)

        df = trace.events(categorical=False)
        check_dtypes(df)
        assert df["seq"].tolist() == list(range(n))
        assert df["ts"].is_monotonic_increasing
        if keep_raw:
            objs = [json.loads(r) for r in df["raw"].dropna()]
            assert len(objs) == sum(r["event_type"] != "GAP" for r in rows)
        else:
            assert df["raw"].isna().all()

        # The manifest agrees with the parts on disk.
        m = trace.manifest
        assert m["status"] == "complete"
        assert m["events"]["rows"] == n
        files = m["events"]["files"]
        assert [f["path"] for f in files] == [f"events/{p.name}" for p in trace.parts]
        assert sum(f["rows"] for f in files) == n
        for f, part in zip(files, trace.parts, strict=True):
            ts = pq.read_table(part, columns=["ts"]).column("ts").to_pylist()
            assert (f["start"], f["end"]) == (ts[0].isoformat(), ts[-1].isoformat())
            assert len(ts) == f["rows"]
            # A part covers less than rotate_s of trace time, whatever the write calls were.
            assert (ts[-1] - ts[0]).total_seconds() < rotate_s
        by_kind: dict[str, int] = {}
        for r in rows:
            by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
        assert {k: v["rows"] for k, v in m["kinds"].items()} == by_kind


def _rows_for_rotation(n: int, step_us: int) -> list[dict[str, Any]]:
    return [
        {"ts": T0_US + i * step_us, "kind": "Pod", "event_type": "ADDED", "name": f"p{i}",
         "namespace": "default", "size_bytes": 100 + i, "req_cpu_milli": i}
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("journal", [True, False])
def test_rotation_by_time_makes_parts_of_fixed_span(tmp_path: Path, journal: bool) -> None:
    rows = _rows_for_rotation(100, 100_000)  # 10 s of trace, rows every 100 ms
    cuts = list(range(7, 100, 7))  # write calls of 0.7 s each
    write_trace(tmp_path / "t", rows, cuts, [True] * len(cuts), journal=journal, rotate_s=2.0)
    trace = open_trace(tmp_path / "t")
    assert len(trace.parts) >= 5
    for part in trace.parts:
        ts = pq.read_table(part, columns=["ts"]).column("ts").to_pylist()
        assert (ts[-1] - ts[0]).total_seconds() < 2.0
    assert trace.to_arrow(columns=["seq"]).column("seq").to_pylist() == list(range(100))


@pytest.mark.parametrize("journal", [True, False])
def test_rotation_by_bytes(tmp_path: Path, journal: bool) -> None:
    rows = _rows_for_rotation(200, 1)
    cuts = list(range(10, 200, 10))
    write_trace(tmp_path / "t", rows, cuts, [False] * len(cuts), journal=journal, rotate_bytes=1)
    trace = open_trace(tmp_path / "t")
    assert len(trace.parts) == 20  # every write call fills a part
    assert trace.count() == 200
    assert trace.events(columns=["name"])["name"].tolist() == [f"p{i}" for i in range(200)]


def test_rows_within_one_call_are_sorted_stably(tmp_path: Path) -> None:
    rows = [
        {"ts": T0_US + dt, "kind": "Pod", "event_type": "ADDED", "name": name}
        for dt, name in [(5, "c"), (1, "a"), (5, "d"), (1, "b"), (3, "x")]
    ]
    with TraceWriter(tmp_path / "t", "synthetic") as w:
        w.write_rows(rows)
        with pytest.raises(ValueError, match="time order"):
            w.write_rows([{"ts": T0_US, "kind": "Pod", "event_type": "ADDED", "name": "late"}])
    df = open_trace(tmp_path / "t").events()
    assert df["name"].tolist() == ["a", "b", "x", "c", "d"]
    assert df["seq"].tolist() == [0, 1, 2, 3, 4]


# -- filters ---
KINDS = ["Pod", "Node", "Lease", "ConfigMap", "Event"]


def _fixed_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """A deterministic mix of kinds and event types, with runs of equal timestamps."""
    rng = random.Random(seed)
    ts = T0_US
    rows = []
    for i in range(n):
        ts += rng.choice([0, 0, 1, 10_000, 400_000])
        kind = rng.choice(KINDS)
        etype = rng.choice(EVENT_TYPES)
        row: dict[str, Any] = {
            "ts": ts, "kind": kind, "event_type": etype, "name": f"{kind.lower()}-{i % 37}",
            "namespace": None if kind == "Node" else rng.choice(["a", "b", "kube-node-lease"]),
            "size_bytes": rng.randint(100, 20_000), "labels": [f"k=v{i % 3}"] if i % 4 else None,
        }  # fmt: skip
        if kind == "Pod":
            row.update(
                req_cpu_milli=rng.randint(0, 4000),
                priority=rng.choice([None, 0, 7]),
                terminating=rng.random() < 0.1,
                phase=rng.choice(["Running", None]),
            )
        if kind == "Node":
            row.update(alloc_cpu_milli=64_000, ready=rng.choice([True, False, None]))
        if kind == "Lease":
            row.update(lease_renew_time=ts - 5, lease_duration_s=40)
        rows.append(row)
    return rows


@pytest.fixture(scope="module", params=["complete", "crashed"])
def filter_trace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A trace of several parts; "crashed" is a copy taken while the writer was open, so its
    last part is a journal and the manifest still says "open"."""
    rows = _fixed_rows(1500, seed=7)
    base = tmp_path_factory.mktemp("filters")
    w = TraceWriter(base / "live", "synthetic", rotate_bytes=40_000, journal=True)
    for i in range(0, len(rows), 100):
        w.write_rows(rows[i : i + 100])
        w.flush()
    if request.param == "crashed":
        shutil.copytree(base / "live", base / "copy")
        trace = open_trace(base / "copy")
        assert trace.journals and trace.parts and not trace.complete
    w.close()
    if request.param == "complete":
        trace = open_trace(base / "live")
    full = trace.events(categorical=False)
    assert len(full) == len(rows)
    return trace, full


times = st.one_of(
    st.none(),
    st.integers(-2, 700).map(lambda s: T0 + timedelta(seconds=s * 0.5)),
)
as_time_like = st.sampled_from(["datetime", "str", "pd", "us"])


def _time_like(t: datetime, how: str) -> Any:
    if how == "str":
        return t.isoformat()
    if how == "pd":
        return pd.Timestamp(t)
    if how == "us":
        return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.none() | st.lists(st.sampled_from([*KINDS, "Nope"]), unique=True),
    etypes=st.none() | st.lists(st.sampled_from(EVENT_TYPES), unique=True),
    start=times,
    end=times,
    how=as_time_like,
    columns=st.none()
    | st.lists(st.sampled_from(COLUMN_NAMES), min_size=1, max_size=6, unique=True),
)
def test_filters_equal_a_pandas_filter(
    filter_trace: tuple[Any, pd.DataFrame], kinds, etypes, start, end, how, columns
) -> None:
    trace, full = filter_trace
    mask = np.ones(len(full), dtype=bool)
    if kinds is not None:
        mask &= full["kind"].isin(kinds).to_numpy()
    if etypes is not None:
        mask &= full["event_type"].isin(etypes).to_numpy()
    if start is not None:
        mask &= (full["ts"] >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        mask &= (full["ts"] < pd.Timestamp(end)).to_numpy()
    expected = full[mask].reset_index(drop=True)
    if columns is not None:
        expected = expected[columns]
    got = trace.events(
        categorical=False,
        kinds=kinds,
        event_types=etypes,
        start=None if start is None else _time_like(start, how),
        end=None if end is None else _time_like(end, how),
        columns=columns,
    )
    pd.testing.assert_frame_equal(got, expected)
    assert trace.count(kinds=kinds, event_types=etypes, start=start, end=end) == mask.sum()
    if columns is None:
        cat = trace.events(kinds=kinds, event_types=etypes, start=start, end=end)
        assert isinstance(cat["kind"].dtype, pd.CategoricalDtype)
        assert cat["kind"].astype(object).tolist() == expected["kind"].astype(object).tolist()


def test_unknown_column_is_a_trace_error(filter_trace: tuple[Any, pd.DataFrame]) -> None:
    from tracesim.errors import TraceError

    with pytest.raises(TraceError, match="nope"):
        filter_trace[0].events(columns=["ts", "nope"])


# -- third-party readers ---
def test_events_read_without_tracesim(tmp_path: Path) -> None:
    rows = _fixed_rows(900, seed=3)
    path = write_trace(tmp_path / "t", rows, list(range(90, 900, 90)), [True] * 9,
                       rotate_bytes=20_000)  # fmt: skip
    events = path / "events"
    assert len(list(events.glob("*.parquet"))) > 2
    total_cpu = sum(r.get("req_cpu_milli") or 0 for r in rows)

    df = pd.read_parquet(events)
    assert len(df) == len(rows)
    assert sorted(df["seq"].tolist()) == list(range(len(rows)))
    assert df.sort_values("seq")["name"].tolist() == [r["name"] for r in rows]

    table = ds.dataset(events, format="parquet").to_table()
    assert table.num_rows == len(rows)
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("req_cpu_milli").type == pa.int64()

    glob = f"{events}/*.parquet"
    assert duckdb.sql(f"select count(*) from '{glob}'").fetchall()[0][0] == len(rows)
    assert duckdb.sql(f"select sum(req_cpu_milli) from '{glob}'").fetchall()[0][0] == total_cpu
    kinds = dict(duckdb.sql(f"select kind, count(*) from '{glob}' group by kind").fetchall())
    assert kinds == {k: sum(r["kind"] == k for r in rows) for k in KINDS if any(
        r["kind"] == k for r in rows)}  # fmt: skip
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "tracesim-trace" and manifest["format_version"] == 1


# -- crash safety ---
CRASH_SCRIPT = """
import os, sys
from tracesim.trace import TraceWriter
path, n_batches, flushed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
w = TraceWriter(path, "recorded", journal=True, rotate_bytes=25_000)  # 3 batches a part
for b in range(n_batches):
    w.write_rows([
        {"ts": 1_715_677_200_000_000 + (b * 50 + i) * 1000, "kind": "Pod", "event_type": "ADDED",
         "namespace": "ns", "name": f"p{b}-{i}", "size_bytes": 1000, "req_cpu_milli": b * 50 + i}
        for i in range(50)
    ])
    if b < flushed:
        w.flush()
os._exit(0)  # die without close(): no final manifest, no last Parquet part
"""


def _run_crashing_writer(path: Path, n_batches: int, flushed: int) -> None:
    subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(path), str(n_batches), str(flushed)],
        check=True,
        cwd=ROOT,
        timeout=60,
    )


def test_crash_after_flush_keeps_every_flushed_row(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _run_crashing_writer(path, n_batches=11, flushed=10)  # the last batch is never flushed
    trace = open_trace(path)
    assert trace.manifest["status"] == "open"
    assert trace.complete is False
    assert trace.parts and trace.journals  # rotated parts plus the journal of the open one
    df = trace.events(categorical=False)
    # Flushed rows are all there, once, in order: 3 parts of 150 and a journal of 50.
    assert [pq.read_metadata(p).num_rows for p in trace.parts] == [150, 150, 150]
    assert len(df) == 10 * 50
    assert df["req_cpu_milli"].tolist() == list(range(len(df)))
    assert df["seq"].tolist() == list(range(len(df)))
    check_dtypes(df)


def _journal_batch_rows(path: Path) -> list[int]:
    with pa.OSFile(str(path), "rb") as f:
        return [b.num_rows for b in pa.ipc.open_stream(f)]


@pytest.mark.parametrize("cut_bytes", [1, 8, 100])
def test_torn_journal_keeps_complete_batches(tmp_path: Path, cut_bytes: int) -> None:
    live = tmp_path / "live"
    w = TraceWriter(live, "recorded", journal=True)  # no rotation: everything in the journal
    rows = _rows_for_rotation(60, 1000)
    for i in range(0, 60, 15):
        w.write_rows(rows[i : i + 15])
        w.flush()
    crashed = tmp_path / "crashed"
    shutil.copytree(live, crashed)  # the state a crash right now would leave
    w.close()
    (journal,) = open_trace(crashed).journals
    assert _journal_batch_rows(journal) == [15, 15, 15, 15]
    assert open_trace(crashed).count() == 60
    size = journal.stat().st_size
    os.truncate(journal, size - cut_bytes)
    trace = open_trace(crashed)
    assert not trace.complete
    df = trace.events(categorical=False)
    assert df["name"].tolist() == [r["name"] for r in rows[:45]]
    assert df["seq"].tolist() == list(range(45))


def test_journal_beside_its_parquet_part_is_ignored(tmp_path: Path) -> None:
    # The writer renames the Parquet part into place, then unlinks the journal; a crash in
    # between leaves both. The reader must count those rows once.
    path = tmp_path / "t"
    rows = _rows_for_rotation(40, 1000)
    write_trace(path, rows, [20], [True], journal=True, rotate_bytes=1)
    trace = open_trace(path)
    assert len(trace.parts) == 2
    first = pq.read_table(trace.parts[0])
    journal = trace.parts[0].with_suffix(".journal")
    with pa.OSFile(str(journal), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as stream:
        stream.write_table(first)
    trace = open_trace(path)
    assert trace.journals == [] and len(trace.parts) == 2
    assert trace.events()["name"].tolist() == [r["name"] for r in rows]


def test_a_lone_kind_string_is_one_kind(filter_trace: tuple[Any, pd.DataFrame]) -> None:
    trace, full = filter_trace
    got = trace.events(categorical=False, kinds="Pod", event_types="ADDED")
    expected = full[(full["kind"] == "Pod") & (full["event_type"] == "ADDED")]
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))
