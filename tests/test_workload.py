"""Loading a trace for the replay: object keys, skipped rows and kind codes of the trace's
other writes (load_trace_writes), pods without a uid (load_workload)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _row_trace import write_trace

from tracesim.sim.workload import POD_DELETE, load_replay, load_trace_writes, load_workload


def row(t, kind, name, etype="ADDED", ns="default", uid="auto", **extra) -> dict:
    uid = f"uid-{kind}-{name}" if uid == "auto" else uid
    return {"t": t, "kind": kind, "event_type": etype, "namespace": ns, "name": name,
            "uid": uid, "size_bytes": 1000, **extra}  # fmt: skip


def node(t, name) -> dict:
    return row(t, "Node", name, "LISTED", ns=None, alloc_cpu_milli=8000,
               alloc_memory_bytes=32 << 30, alloc_pods=110, ready=True)  # fmt: skip


def test_trace_writes_keys_kinds_and_skipped_rows(tmp_path: Path) -> None:
    rows = [node(0, "n0")]
    rows += [
        row(1, "Secret", "s", uid=None),  # no uid: keyed by namespace/name
        row(2, "ConfigMap", "cm"),
        row(3, "Secret", "s", "MODIFIED", uid=None),
        row(4, "ClusterRole", "admin", ns=None),  # cluster-scoped
        row(5, "ConfigMap", "cm", "GAP"),
        row(6, "Event", "sched", detail="Scheduled"),  # the scheduler's own Event: skipped
        row(7, "Event", "sched", "MODIFIED", detail=None),  # the same object: skipped too
        row(8, "Event", "other", detail="Pulled"),
        row(9, "Secret", "s", "DELETED", uid=None),
        row(10, "ConfigMap", "gone", "DELETED"),  # delete of an unknown object
        row(11, "Lease", "n0", "MODIFIED", ns="kube-node-lease"),
    ]
    path = write_trace(tmp_path / "t", rows)
    w = load_workload(str(path))
    tw = load_trace_writes(str(path), start=w.start, duration_s=w.duration_s)
    kinds = [tw.kinds[k] for k in tw.kind]
    # Kinds are numbered in order of first appearance of the rows kept.
    assert tw.kinds == ["Secret", "ConfigMap", "ClusterRole", "Event"]
    assert kinds == ["Secret", "ConfigMap", "Secret", "ClusterRole", "Event", "Secret"]
    assert tw.op.tolist() == [0, 0, 1, 0, 0, 2]
    assert tw.key[0] == tw.key[2] == tw.key[5] and len(set(tw.key.tolist())) == 4
    assert tw.namespaced.tolist() == [True, True, True, False, True, True]
    assert tw.t_s.tolist() == [1.0, 2.0, 3.0, 4.0, 8.0, 9.0]
    assert tw.skipped == {"gap_markers": 1, "scheduler_events": 2, "delete_of_unknown_object": 1}
    # Without modelled heartbeats the trace's Node and Lease rows are writes too.
    all_w = load_trace_writes(str(path), start=w.start, duration_s=w.duration_s,
                              heartbeats_modelled=False)  # fmt: skip
    assert all_w.kinds[:2] == ["Node", "Secret"] and "Lease" in all_w.kinds
    assert len(all_w) == len(tw) + 2


def test_pods_and_nodes_read_in_one_pass_across_parts(tmp_path: Path) -> None:
    """A pod without a uid is one pod (keyed by namespace/name); nodes and pods come out the
    same whether the trace is one Parquet part or many."""
    rows = [node(0, f"n{i}") for i in range(3)]
    rows += [row(1 + i, "Pod", f"p{i}", req_cpu_milli=100 * (i + 1)) for i in range(30)]
    rows += [row(2.5, "Pod", "nouid", uid=None, req_cpu_milli=7), row(40, "Pod", "nouid",
             "DELETED", uid=None)]  # fmt: skip
    rows += [row(3.5, "ConfigMap", "cm"), node(35, "n3")]
    one = load_workload(str(write_trace(tmp_path / "one", rows)))
    many_path = write_trace(tmp_path / "many", rows, rotate_s=5.0)
    assert len(list((many_path / "events").glob("*.parquet"))) > 3
    many = load_workload(str(many_path))
    for a, b in ((one, many),):
        assert a.node_names == b.node_names == ["n0", "n1", "n2", "n3"]
        assert a.uid.tolist() == b.uid.tolist()
        assert a.cpu_milli.tolist() == b.cpu_milli.tolist()
        assert np.array_equal(a.op_t_s, b.op_t_s) and np.array_equal(a.op, b.op)
    assert one.n_pods == 31 and "default/nouid" in one.uid.tolist()
    nouid = one.uid.tolist().index("default/nouid")
    deletes = one.op_index[one.op == POD_DELETE]
    assert deletes.tolist() == [nouid] and one.cpu_milli[nouid] == 7


def test_load_replay_equals_the_two_loaders(tmp_path: Path) -> None:
    """One pass for the workload and the other writes gives what the two loaders give, with
    and without modelled heartbeats, in a window and dilated."""
    rows = [node(0, f"n{i}") for i in range(3)]
    rows += [row(1 + i, "Pod", f"p{i}", req_cpu_milli=100 * (i + 1)) for i in range(12)]
    rows += [row(2 + i, "ConfigMap", f"cm{i % 3}", "ADDED" if i < 3 else "MODIFIED")
             for i in range(8)]  # fmt: skip
    rows += [row(3, "Lease", "n0", "MODIFIED", ns="kube-node-lease"), node(6, "n3")]
    rows += [row(9, "Event", "e", detail="Scheduled"), row(10, "ConfigMap", "cm1", "DELETED")]
    path = str(write_trace(tmp_path / "t", rows, rotate_s=4.0))
    for window, dilation in (((0.0, None), 1.0), ((2.0, 9.5), 2.0)):
        w = load_workload(path, window=window, dilation=dilation)
        assert load_replay(path, window=window, dilation=dilation)[1] is None
        for modelled in (True, False):
            w2, tw2 = load_replay(path, window=window, dilation=dilation,
                                  heartbeats_modelled=modelled)  # fmt: skip
            tw = load_trace_writes(path, start=w.start, duration_s=w.duration_s, window=window,
                                   dilation=dilation, heartbeats_modelled=modelled)  # fmt: skip
            assert w2.start == w.start and w2.duration_s == w.duration_s
            assert w2.uid.tolist() == w.uid.tolist() and w2.node_names == w.node_names
            assert np.array_equal(w2.op_t_s, w.op_t_s) and np.array_equal(w2.op_index, w.op_index)
            assert tw2.kinds == tw.kinds and tw2.skipped == tw.skipped and len(tw) > 3
            for name in ("kind", "t_s", "op", "key", "size_bytes", "namespaced"):
                assert np.array_equal(getattr(tw2, name), getattr(tw, name)), name
