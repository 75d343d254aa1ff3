"""Typed parameter sets for the control-plane models, and named profiles.

Every model parameter is a dataclass field whose name carries its unit (``fsync_ms``,
``size_bytes``) and whose metadata carries the unit again (for listings and for checking
``--set`` values) and a ``source``: where the number comes from, citing
``../shared/design/control-plane-facts.md`` (abbreviated "facts") or saying "our reading" /
"assumption" when it is an estimate rather than a published figure.

Profiles are TOML files shipped in ``tracesim/models/profiles/`` (``2019-era``, ``current``);
a profile only needs to list the values it changes — anything missing keeps the dataclass
default. :func:`load_profile` loads one by name (or from a ``.toml`` path) and applies
``section.key=value`` overrides; an unknown profile, section or key, or a value of the wrong
type or unit, raises :class:`~tracesim.errors.TracesimError` naming the valid choices, so bad
input fails before any simulation starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import TracesimError

FACTS = "facts"  # ../shared/design/control-plane-facts.md


def _p(default: Any, unit: str, source: str, *, choices: tuple[str, ...] = (), minimum=0.0):
    """A parameter field: default value, unit ("ms", "bytes", "bool", "choice", ...) and source."""
    meta = {"unit": unit, "source": source, "choices": choices, "minimum": minimum}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EtcdParams:
    """etcd leader, MVCC store and bbolt backend. Defaults reproduce the published benchmark."""

    client_rtt_ms: float = _p(
        0.3, "ms", f"{FACTS} etcd: serializable read 0.3 ms with 1 client (our reading: mostly RTT)"
    )
    client_rtt_cpu_us: float = _p(
        0.0,
        "us",
        "the calibration client's own CPU per request inside client_rtt_ms (its measured CPU "
        "per single-client get): a calibration replay that runs the client's CPU per put on "
        "the CPU pool takes this out of the puts' round trip, so that it counts once; a "
        "replay of a trace does not use it; measured by tracesim calibrate etcd; 0 (default)",
    )
    peer_rtt_ms: float = _p(
        0.35, "ms", "our reading: calibrated so 1 client writes take ~1.6 ms (facts etcd benchmark)"
    )
    fsync_ms: float = _p(1.0, "ms", f"{FACTS} etcd: WAL fdatasync under 1 ms on SSD, ~10 ms HDD")
    apply_us_per_request: float = _p(
        18.0,
        "us",
        f"our reading of {FACTS} etcd benchmark: 44,341 writes/s at 1,000 clients = ~21 us/write",
    )
    ns_per_byte: float = _p(
        10.0, "ns", "our reading: marshal + WAL write + bbolt put per byte of a write (~100 MB/s)"
    )
    fsync_cv_ratio: float = _p(
        0.0,
        "ratio",
        "coefficient of variation of each batch's WAL fsync and each backend commit (lognormal, "
        f"mean 1); fitted by tracesim calibrate etcd ({FACTS} etcd disk guidance: fsync p99 "
        "< 10 ms, i.e. tails well above the mean); 0 = deterministic",
    )
    batch_apply_cv_ratio: float = _p(
        0.0,
        "ratio",
        "coefficient of variation of each batch's apply work (lognormal, mean 1: GC pauses and "
        "CPU preemption stall the leader loop); fitted by tracesim calibrate etcd; "
        "0 = deterministic",
    )
    byte_cv_ratio: float = _p(
        -1.0,
        "ratio",
        "coefficient of variation of one request's per-byte work (ns_per_byte x bytes; "
        "lognormal, mean 1, independent per request, so a batch of k like requests has CV "
        "byte_cv_ratio / sqrt(k)); negative (default) = the per-byte work takes the batch's "
        "apply multiplier (batch_apply_cv_ratio), as before. Our reading of tracesim calibrate "
        "etcd runs: the ~1 MB puts' p99/p50 falls from 2.1-2.9 at 1 in flight to 1.4-1.5 at 8, "
        "as independent per-request spreads would, where one stall per batch would not; "
        "calibrated",
        minimum=-1.0,
    )
    stall_per_s: float = _p(
        0.0,
        "1/s",
        "rate of stalls of the leader's apply work (Go GC pauses, preemption by other "
        "processes on a shared machine): a batch whose apply takes T s meets a Poisson "
        "number of stalls with mean stall_per_s x T, each exponential with mean stall_ms; "
        "unlike batch_apply_cv_ratio their time does not scale with the batch's work, so a "
        "large batch's relative spread is small and a small one's tail is long (our reading "
        "of tracesim calibrate etcd runs: small puts' p99/p50 falls from ~2.4 at 2-8 in "
        "flight to ~1.8 at 128-256); calibrated; 0 (default) = none",
        minimum=0.0,
    )
    stall_ms: float = _p(
        0.0,
        "ms",
        "mean duration of one apply stall (stall_per_s); 0 (default) = none",
        minimum=0.0,
    )
    apply_pipelined: bool = _p(
        False,
        "bool",
        "the leader's WAL stage (peer round + fdatasync) and apply stage (apply work + backend "
        "commits) run concurrently: etcd server/etcdserver/raft.go raftNode.start() hands a "
        "Ready's committed entries to the apply goroutine (r.applyc <- ap) before it saves the "
        "new entries to the WAL (r.storage.Save), and EtcdServer.applyAll applies batch k while "
        "the raft loop fsyncs batch k+1 (raft thesis 10.2.1: the leader writes its log in "
        "parallel); the bbolt batch-tx commit blocks applies, not the WAL. Chosen by tracesim "
        "calibrate etcd when it fits the puts better; false (default) = one serial leader loop",
    )
    wal_ns_per_byte: float = _p(
        0.0,
        "ns",
        "per byte of a batch, work on the WAL stage before its fdatasync (encoding and writing "
        "the entries in etcd wal.(*WAL).Save), with the fsync's spread; ns_per_byte is "
        "then the apply side's per-byte work (bbolt put); matters with apply_pipelined, where "
        "the two stages overlap. Our reading of tracesim calibrate etcd runs (~1 MB puts: 2 in "
        "flight take about the latency of 1 at twice the throughput); calibrated; 0 (default) "
        "= all per-byte work on the apply side",
    )
    write_overhead_us: float = _p(
        0.0,
        "us",
        "latency every write spends off the leader's serial path (gRPC gateway and server "
        "handling of a put, the proposal's and the apply notification's goroutine handoffs), "
        "added to its response after client_rtt_ms; it delays a write without occupying the "
        "leader. Our reading of tracesim calibrate etcd runs (2 puts in flight answered at "
        "~1.7x the throughput of 1); calibrated; 0 (default) = none",
    )
    backend_commit_interval_ms: float = _p(
        100.0, "ms", "etcd --backend-batch-interval default 100 ms"
    )
    backend_commit_max_ops: int = _p(10_000, "ops", "etcd --backend-batch-limit default 10,000")
    backend_commit_ms: float = _p(
        2.0, "ms", f"our reading of {FACTS} etcd disk guidance (backend commit p99 < 25 ms)"
    )
    backend_commit_ns_per_byte: float = _p(
        0.0,
        "ns",
        "a backend commit's cost per byte written since the previous commit (values and "
        "key_overhead_bytes; bbolt writes the dirty pages before its fdatasync, so a commit "
        "after many large puts stalls the apply longer); our reading of tracesim calibrate "
        "etcd runs (16 kB puts' tails at 4-16 in flight); calibrated; 0 (default) = a commit "
        "costs backend_commit_ms (and its freelist work) whatever it writes",
    )
    page_size_bytes: int = _p(4096, "bytes", "bbolt page size = OS page size (4 KiB)", minimum=512)
    key_overhead_bytes: int = _p(
        120, "bytes", "assumption: key path + revision + lease metadata per stored revision"
    )
    btree_overhead_ratio: float = _p(
        1.5, "ratio", "assumption: bbolt leaf pages about two-thirds full", minimum=1.0
    )
    freelist: str = _p(
        "hashmap",
        "choice",
        f"{FACTS} etcd: bbolt freelist array (original) or hashmap (bbolt PR #138/#141)",
        choices=("array", "hashmap"),
    )
    freelist_array_ns_per_free_page: float = _p(
        1.0,
        "ns",
        f"our reading of {FACTS}: array freelist scans/copies the sorted page-id array "
        "(8 B per free page) per multi-page allocation and per commit",
    )
    freelist_ns_per_alloc: float = _p(
        200.0,
        "ns",
        f"our reading of {FACTS}: constant part of a page allocation (all a hashmap "
        "allocate/release costs, O(1); also an array single-page allocation from its head)",
    )
    max_request_bytes: int = _p(1_572_864, "bytes", f"{FACTS} etcd limits: request <= 1.5 MiB")
    quota_bytes: int = _p(2_147_483_648, "bytes", f"{FACTS} etcd limits: quota 2 GiB default")
    read_concurrency: int = _p(8, "workers", "assumption: 8 vCPU benchmark machine", minimum=1)
    range_base_us: float = _p(20.0, "us", "assumption: fixed cost of a range request")
    range_us_per_object: float = _p(
        2.0, "us", "our reading: bbolt cursor step + key decode per object scanned"
    )
    range_ns_per_byte: float = _p(1.0, "ns", "assumption: copy of returned values (~1 GB/s)")
    read_sharing: str = _p(
        "fcfs",
        "choice",
        "how reads share the read_concurrency workers: fcfs (a queue in front of them) or ps "
        "(processor sharing: every read in progress gets an equal share of that many cores, "
        "like goroutines on GOMAXPROCS cores); ps fitted by tracesim calibrate etcd (its "
        "p99/p50 stays about constant with reads in flight, as a FIFO queue's would not)",
        choices=("fcfs", "ps"),
    )
    read_cv_ratio: float = _p(
        0.0,
        "ratio",
        "coefficient of variation of each read's service time (lognormal, mean 1: GC, "
        "scheduling, cache misses); fitted by tracesim calibrate etcd; 0 = deterministic",
    )
    read_delay_ratio: float = _p(
        0.0,
        "ratio",
        "probability that a read which finds read_delay_min_reads or more reads on the "
        "workers (itself included) is answered read_delay_ms late: its thread waits for a "
        "core while more threads are runnable than there are cores (Linux CFS lets the "
        "running one finish its slice of a few ms); the wait does not hold a worker; our "
        "reading of tracesim calibrate etcd runs on 2 cores shared with the client (a lone "
        "get's p99 is 1.5x its median, 2 gets in flight have 0.1% over 2 ms, and from 4 in "
        "flight 1-4% of them take 3-5 ms: docs/validation.md, 'Twelfth session'); "
        "calibrated; 0 (default) = none",
    )
    read_delay_ms: float = _p(
        0.0,
        "ms",
        "with read_delay_ratio: how long a delayed read waits (fixed: a scheduler slice); "
        "calibrated; 0 (default) = none",
    )
    read_delay_min_reads: int = _p(
        1,
        "reads",
        "with read_delay_ratio: a read can be delayed only if it finds this many reads "
        "at the workers (served or waiting), itself included (more runnable threads than "
        "cores); tracesim "
        "calibrate etcd sets it to the cores etcd shared with its client + 1; 1 (default) "
        "= any read",
        minimum=1,
    )
    read_index_us: float = _p(
        0.0,
        "us",
        "CPU a linearizable read costs on the read workers beyond a serializable one (its "
        "ReadIndex request through raft and the wait for the applied index, etcd's "
        "linearizableReadLoop); our reading of tracesim calibrate etcd runs (linearizable "
        "gets saturate 5-40% below serializable ones in 3 of 4 runs); calibrated; 0 (default) "
        "= the read-index round is only the delay peer_rtt_ms",
    )
    read_front_us: float = _p(
        0.0,
        "us",
        "per-read cost of one serial stage (a FIFO single worker) that every read passes "
        "before the read workers: a single-threaded client event loop and the gRPC gateway's "
        "per-connection handling; our reading of tracesim calibrate etcd runs (get throughput "
        "rises gradually from 1 to 32 in flight, as two stations in tandem do, not one); "
        "calibrated; 0 (default, with read_wakeup_us 0) = no such stage",
    )
    read_wakeup_us: float = _p(
        0.0,
        "us",
        "cost of one wakeup of that serial stage, shared by all reads it takes up together "
        "(an event loop or netpoller handles every ready request per wakeup, so its cost per "
        "read falls as reads arrive together); our reading of tracesim calibrate etcd runs "
        "(get throughput grows ~25% per doubling of reads in flight from 1 to 16); "
        "calibrated; 0 (default) = no per-wakeup cost",
    )
    cpu_cores: int = _p(
        0,
        "cores",
        "cores of a CPU pool (processor sharing) on which the write path's CPU work runs: "
        "front_cpu_*, the raft CPU of the WAL stage (wal_cpu_*) and the apply work; the "
        "fdatasync (fsync_ms) stays the disk's. Work in flight shares the cores, so every "
        "stage slows as the pool fills, as etcd's own counters show on a machine whose cores "
        "it shares with its client (docs/validation.md, 'A shared CPU pool'); experimental, "
        "0 (default) = no pool: each stage's work is a plain delay",
        minimum=0,
    )
    front_cpu_us: float = _p(
        0.0,
        "us",
        "with cpu_cores: CPU of each write before raft (gRPC decoding, the proposal), run on "
        "the pool in parallel with other writes' (goroutines); our reading of tracesim "
        "calibrate etcd runs (docs/validation.md, 'A shared CPU pool'); 0 (default) = none",
    )
    front_cpu_ns_per_byte: float = _p(
        0.0,
        "ns",
        "with cpu_cores: front_cpu_us's work per byte of the write (decoding, copying); our "
        "reading of tracesim calibrate etcd runs (16 kB puts); 0 (default) = none",
    )
    wal_cpu_us_per_batch: float = _p(
        0.0,
        "us",
        "with cpu_cores: raft's CPU per batch (one Ready: its processing, the WAL write "
        "syscalls, the hand-off to apply), run on the pool after the fdatasync while the WAL "
        "stage waits; our reading of tracesim calibrate etcd runs (etcd's WAL cycle per "
        "fdatasync grows linearly with the puts it carries); 0 (default) = none",
    )
    wal_cpu_us_per_entry: float = _p(
        0.0,
        "us",
        "with cpu_cores: raft's CPU per entry of a batch, with wal_cpu_us_per_batch; our "
        "reading of tracesim calibrate etcd runs (~0.12-0.14 ms per 400 B entry on a 2-core "
        "machine); 0 (default) = none",
    )
    fsync_wakeup_front_ratio: float = _p(
        0.0,
        "ratio",
        "with cpu_cores: after a batch's fdatasync, raft's goroutine waits for a core behind "
        "the puts' front work (front_cpu_*) already on the pool: this multiple of that "
        "outstanding front work (at most fsync_wakeup_max_ms) is added to the WAL stage's "
        "CPU job. Go's runtime.exitsyscall puts a goroutine that finds no idle processor on "
        "the global run queue, behind the runnable request goroutines; etcd's own "
        "wal_fsync_duration_seconds (which ends when the goroutine runs again) grows from "
        "0.31-0.35 ms with one 16 kB put in flight to 0.8-1.0 ms at 8 and 1.1-1.5 ms at 256 "
        "(five runs), while a plain fdatasync under CPU load stays at 0.2-0.3 ms "
        "(docs/validation.md, 'Tenth session'); tracesim calibrate etcd tries 3 and keeps "
        "it if it fits the puts better; 0 (default) = no wait",
        minimum=0.0,
    )
    fsync_wakeup_max_ms: float = _p(
        1.5,
        "ms",
        "with fsync_wakeup_front_ratio: the longest such wait, etcd's mean fdatasync at "
        "saturation less a lone put's in our calibration runs (1.2-1.7 ms for puts up to "
        "16 kB on a 2-core machine; docs/validation.md, 'Tenth session')",
        minimum=0.0,
    )
    cpu_cv_ratio: float = _p(
        0.0,
        "ratio",
        "with cpu_cores: coefficient of variation of each job's work on the pool (lognormal, "
        "mean 1: GC, preemption); fitted to the tails of calibration runs; 0 (default) = "
        "deterministic",
    )
    cpu_pause_per_s: float = _p(
        0.0,
        "1/s",
        "with cpu_cores: rate of pauses of the whole pool (Poisson, per second while work is "
        "on it): every job stops for the pause (Go's stop-the-world GC phases, the machine's "
        "other processes taking the cores), which lengthens a few requests' latency by the "
        "same absolute amount whatever the load; fitted to the tails of calibration runs; 0 "
        "(default) = none",
    )
    cpu_pause_ms: float = _p(
        0.0,
        "ms",
        "with cpu_pause_per_s: mean duration of one pause of the pool (exponential); 0 "
        "(default) = none",
    )
    compaction_us_per_revision: float = _p(
        3.0, "us", "assumption: delete one old revision from bbolt"
    )
    compaction_batch_revisions: int = _p(
        1000, "revisions", "etcd --experimental-compaction-batch-limit default 1000", minimum=1
    )
    compaction_sleep_ms: float = _p(
        10.0, "ms", "etcd --experimental-compaction-sleep-interval default 10 ms"
    )
    defrag_s_per_gib: float = _p(
        10.0, "s", f"assumption: defrag rewrites the file at ~100 MB/s; {FACTS}: blocks the member"
    )


APF_SHARES = {
    "system": 30,
    "node-high": 40,
    "leader-election": 10,
    "workload-high": 40,
    "workload-low": 100,
    "global-default": 20,
    "catch-all": 5,
}
# Default APF configuration (kubernetes pkg/apis/flowcontrol/bootstrap/default.go, our reading):
# number of queues per level; 0 = reject at once when all seats are busy (catch-all).
APF_QUEUES = {
    "system": 64,
    "node-high": 64,
    "leader-election": 16,
    "workload-high": 128,
    "workload-low": 128,
    "global-default": 128,
    "catch-all": 0,
}


@dataclass
class ApiServerParams:
    """kube-apiserver: admission (APF or max-in-flight), CPU costs, watch cache and fan-out."""

    apf_enabled: bool = _p(
        True, "bool", f"{FACTS} kube-apiserver: APF; before it, max-in-flight limits only"
    )
    max_requests_inflight: int = _p(400, "seats", f"{FACTS}: --max-requests-inflight 400")
    max_mutating_requests_inflight: int = _p(
        200, "seats", f"{FACTS}: --max-mutating-requests-inflight 200"
    )
    apf_shares: dict[str, int] = _p(  # noqa: RUF009 (_p returns a dataclasses.field)
        APF_SHARES, "shares", f"{FACTS}: priority level shares"
    )
    apf_queues: dict[str, int] = _p(  # noqa: RUF009
        APF_QUEUES, "queues", "kubernetes bootstrap APF config (our reading); 0 = reject"
    )
    apf_queue_length_limit: int = _p(50, "requests", f"{FACTS}: queue length limit 50")
    apf_hand_size: int = _p(6, "queues", "kubernetes bootstrap APF config: hand size 6", minimum=1)
    request_cpu_us: float = _p(150.0, "us", "assumption: authn/authz/admission/routing per request")
    serialize_ns_per_byte: float = _p(
        5.0, "ns", "our reading: JSON/protobuf encode or decode ~200 MB/s per core"
    )
    watch_cache_enabled: bool = _p(True, "bool", f"{FACTS} kube-apiserver: watch cache")
    list_from_cache: bool = _p(
        True, "bool", f"{FACTS}: KEP 2340 consistent reads from cache (else LIST reads etcd)"
    )
    cache_us_per_object_scanned: float = _p(
        0.3, "us", "assumption: in-memory selector match per cached object"
    )
    serialize_once_per_event: bool = _p(
        True, "bool", f"{FACTS}: KEP 1152 (serialise an event once for all watchers)"
    )
    watch_send_us_per_watcher: float = _p(
        3.0, "us", "assumption: queue an event on one watcher's channel and write it"
    )
    compaction_interval_s: float = _p(
        300.0, "s", f"{FACTS} etcd MVCC: kube-apiserver compacts every 5 minutes"
    )
    cpu_cores: int = _p(16, "cores", "assumption: control-plane VM size", minimum=1)
    storage_size_ratio: float = _p(
        1.0,
        "ratio",
        "our reading: etcd stores the protobuf encoding, about half the JSON size served "
        "(trace size_bytes are JSON); the shipped profiles set 0.5, the bare-model default 1.0 "
        "takes sizes as stored",
    )


@dataclass
class KubeletParams:
    """Node heartbeats (KEP-589)."""

    heartbeat: str = _p(
        "lease",
        "choice",
        f"{FACTS} node heartbeats: KEP-589 Leases, or full NodeStatus before it",
        choices=("lease", "nodestatus"),
    )
    heartbeat_interval_s: float = _p(10.0, "s", f"{FACTS} KEP-589: every 10 s", minimum=0.001)
    lease_size_bytes: int = _p(400, "bytes", f"{FACTS} KEP-589: a few hundred bytes")
    node_status_size_bytes: int = _p(
        15_000, "bytes", f"{FACTS} KEP-589: Node objects easily exceed 15 kB"
    )
    node_status_report_interval_s: float = _p(
        300.0, "s", f"{FACTS} KEP-589: with Leases NodeStatus every 5 min", minimum=0.001
    )
    stream_bucket_ms: float = _p(
        10.0,
        "ms",
        "simplification: heartbeats within one bucket are submitted together",
        minimum=0.001,
    )
    sync_delay_ms: float = _p(
        50.0,
        "ms",
        "assumption: kubelet syncLoop reacts to a pod update seen on its watch "
        "(writes ContainerCreating)",
    )
    pod_start_latency_s: float = _p(
        1.5,
        "s",
        f"assumption: sandbox + container start without image pull; {FACTS} SLO allows 5 s "
        "from creation to Running",
    )
    pod_stop_s: float = _p(
        1.0, "s", "assumption: containers stopped and final status written after a DELETE"
    )


@dataclass
class SchedulerClientParams:
    """The scheduler's API client and the time of its scheduling cycle.

    Cycle time = ``cycle_base_us`` + nodes examined x ``filter_plugins`` x
    ``filter_us_per_node_plugin`` / ``parallelism`` + nodes scored x ``score_plugins`` x
    ``score_us_per_node_plugin`` / ``parallelism``: about 1.3 ms at 5,000 nodes (500 examined),
    i.e. ~770 pods/s, inside the scheduler_perf 680-810 pods/s (facts).
    """

    client_qps: float = _p(50.0, "qps", f"{FACTS} kube-scheduler: client defaults 50 QPS")
    client_burst: int = _p(100, "requests", f"{FACTS} kube-scheduler: burst 100", minimum=1)
    event_writes_per_pod: int = _p(1, "writes", f"{FACTS}: usually an Event write per pod")
    cycle_base_us: float = _p(
        250.0,
        "us",
        f"our reading of {FACTS} scheduler_perf (1.2-1.5 ms per pod at 5k nodes): queue pop, "
        "snapshot, PreFilter/Reserve/Permit, assume",
    )
    filter_plugins: int = _p(
        13, "plugins", "kubernetes default_plugins.go: Filter plugins enabled by default"
    )
    score_plugins: int = _p(7, "plugins", f"{FACTS}: 7 weighted Score plugins by default")
    filter_us_per_node_plugin: float = _p(
        1.5,
        "us",
        f"our reading of {FACTS} scheduler_perf: calibrated with score_us_per_node_plugin to "
        "~1.3 ms per pod at 5,000 nodes (500 nodes examined)",
    )
    score_us_per_node_plugin: float = _p(
        2.0, "us", f"our reading of {FACTS} scheduler_perf (see filter_us_per_node_plugin)"
    )
    parallelism: int = _p(
        16, "workers", f"{FACTS} kube-scheduler: Filter and Score run on 16 workers", minimum=1
    )


@dataclass
class WorkloadParams:
    """How ``tracesim replay --profile`` charges a trace to the models (docs/models.md)."""

    model_heartbeats: bool = _p(
        True,
        "bool",
        "replay choice: heartbeats come from the kubelet model (the trace's Lease and Node "
        "rows are then not replayed); false replays them as recorded writes",
    )
    request_bucket_ms: float = _p(
        10.0,
        "ms",
        "simplification: the replay submits requests in waves on a grid of this width, one "
        "group per APF level per wave (docs/models.md, batching); 0 = each at its own time",
    )
    wave_max_seat_fraction: float = _p(
        1.0,
        "ratio",
        "simplification (docs/models.md, waves): a level's part of a wave larger than this "
        "fraction of the level's APF seats is offered in chunks spread over the window, as "
        "spread arrivals would be",
        minimum=0.001,
    )
    controller_watchers: int = _p(
        3,
        "watchers",
        f"assumption ({FACTS} watch fan-out): scheduler, controller-manager and one more "
        "controller watch pods and nodes cluster-wide",
    )
    node_agents_per_node: int = _p(
        1,
        "watchers",
        f"{FACTS} watch fan-out: kube-proxy on every node watches Endpoints/Services",
    )
    event_size_bytes: int = _p(
        700, "bytes", "our reading: a core/v1 Event as served by a v1.30 API server (synth)"
    )
    event_ttl_s: float = _p(3600.0, "s", "kube-apiserver --event-ttl default 1 h")
    retry_after_s: float = _p(
        1.0, "s", "client-go: a 429 carries Retry-After 1 s; the client retries"
    )
    max_retries: int = _p(10, "retries", "client-go: at most 10 retries of a 429")
    sample_interval_s: float = _p(
        10.0, "s", "replay choice: component time series sampled every 10 s", minimum=0.001
    )


SECTIONS: dict[str, type] = {
    "etcd": EtcdParams,
    "apiserver": ApiServerParams,
    "kubelet": KubeletParams,
    "scheduler": SchedulerClientParams,
    "workload": WorkloadParams,
}


@dataclass
class Profile:
    """A complete parameter set: one instance per section, plus the profile's name."""

    name: str = "defaults"
    etcd: EtcdParams = field(default_factory=EtcdParams)
    apiserver: ApiServerParams = field(default_factory=ApiServerParams)
    kubelet: KubeletParams = field(default_factory=KubeletParams)
    scheduler: SchedulerClientParams = field(default_factory=SchedulerClientParams)
    workload: WorkloadParams = field(default_factory=WorkloadParams)

    def to_dict(self) -> dict[str, Any]:
        """``{section: {key: value}}`` (plus ``name``), JSON-serialisable."""
        out: dict[str, Any] = {"name": self.name}
        for sec in SECTIONS:
            out[sec] = dataclasses.asdict(getattr(self, sec))
        return out

    def describe(self) -> list[tuple[str, Any, str, str]]:
        """One row per parameter: (``section.key``, value, unit, source)."""
        rows = []
        for sec, cls in SECTIONS.items():
            obj = getattr(self, sec)
            for f in dataclasses.fields(cls):
                rows.append(
                    (
                        f"{sec}.{f.name}",
                        getattr(obj, f.name),
                        f.metadata["unit"],
                        f.metadata["source"],
                    )
                )
        return rows


# --------------------------------------------------------------------------- loading


def profile_dir() -> Any:
    """The directory (an importlib Traversable) holding the shipped ``*.toml`` profiles."""
    return resources.files("tracesim.models").joinpath("profiles")


def profile_names() -> list[str]:
    """Sorted names of the shipped profiles."""
    return sorted(p.name[:-5] for p in profile_dir().iterdir() if p.name.endswith(".toml"))


def _fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def _unknown(what: str, name: str, valid: Iterable[str]) -> TracesimError:
    return TracesimError(f"unknown {what} {name!r}; valid: {', '.join(sorted(valid))}")


_NUM = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/%]*)\s*$")


def _coerce(key: str, f: dataclasses.Field, raw: Any, *, typ: Any = None) -> Any:
    """``raw`` (a TOML value or a ``--set`` string) as the field's type; TracesimError if not."""
    unit = f.metadata["unit"]
    typ = typ or f.type
    if typ in ("bool", bool):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return raw.strip().lower() in ("true", "1", "yes")
        raise TracesimError(f"{key} takes true or false; got {raw!r}")
    if typ in ("str", str):
        choices = f.metadata["choices"]
        val = str(raw).strip()
        if choices and val not in choices:
            raise TracesimError(f"{key} must be one of {', '.join(choices)}; got {raw!r}")
        return val
    if typ in ("float", "int", float, int):
        want_int = typ in ("int", int)
        if isinstance(raw, bool):
            raise TracesimError(f"{key} takes a number in {unit}; got {raw!r}")
        if isinstance(raw, int | float):
            num: float = raw
        else:
            m = _NUM.match(str(raw))
            if not m:
                raise TracesimError(f"{key} takes a number in {unit}; got {raw!r}")
            suffix = m.group(2)
            if suffix and suffix != unit:
                raise TracesimError(
                    f"{key} is in {unit}, not {suffix!r}; give a plain number of {unit}"
                )
            num = float(m.group(1))
        if not math.isfinite(num):
            raise TracesimError(f"{key} must be a finite number; got {raw!r}")
        if want_int:
            if num != int(num):
                raise TracesimError(f"{key} takes a whole number of {unit}; got {raw!r}")
            num = int(num)
        if num < f.metadata["minimum"]:
            raise TracesimError(f"{key} must be >= {f.metadata['minimum']} {unit}; got {raw!r}")
        return num
    raise AssertionError(f"unsupported parameter type {typ!r} for {key}")  # a bug, not input


def _set_value(profile: Profile, key: str, raw: Any) -> None:
    """Set ``section.key`` (or ``section.key.level`` for per-level tables) to ``raw``."""
    parts = key.split(".")
    if parts[0] not in SECTIONS:
        raise _unknown("parameter section", parts[0], SECTIONS)
    if len(parts) < 2:
        raise TracesimError(f"{key!r} names a section, not a parameter; write {parts[0]}.KEY=VALUE")
    fields = _fields(parts[0])
    if parts[1] not in fields:
        raise _unknown(f"{parts[0]} parameter", parts[1], fields)
    f = fields[parts[1]]
    obj = getattr(profile, parts[0])
    is_table = str(f.type).startswith("dict")
    if is_table:
        table = dict(getattr(obj, f.name))
        if len(parts) == 3:
            if parts[2] not in table:
                raise _unknown(f"{parts[0]}.{f.name} entry", parts[2], table)
            table[parts[2]] = _coerce(key, f, raw, typ=int)
        elif len(parts) == 2 and isinstance(raw, Mapping):
            for sub, val in raw.items():
                if sub not in table:
                    raise _unknown(f"{parts[0]}.{f.name} entry", sub, table)
                table[sub] = _coerce(f"{key}.{sub}", f, val, typ=int)
        else:
            raise TracesimError(
                f"{parts[0]}.{f.name} is a table; set one entry: "
                f"{parts[0]}.{f.name}.LEVEL=N (levels: {', '.join(table)})"
            )
        setattr(obj, f.name, table)
        return
    if len(parts) != 2:
        raise TracesimError(f"{key!r}: {parts[0]}.{parts[1]} has no sub-keys")
    setattr(obj, f.name, _coerce(key, f, raw))


def parse_overrides(items: Iterable[str]) -> list[tuple[str, str]]:
    """``["etcd.fsync_ms=2", ...]`` -> ``[("etcd.fsync_ms", "2"), ...]``; error if no ``=``."""
    out = []
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise TracesimError(f"--set {item!r}: write SECTION.KEY=VALUE, e.g. etcd.fsync_ms=2")
        out.append((key.strip(), val.strip()))
    return out


def load_profile(name: str | Path = "current", overrides: Iterable[str] = ()) -> Profile:
    """The named shipped profile (or a ``.toml`` file path, a str or a Path) with ``--set``
    overrides applied.

    Raises :class:`TracesimError` for an unknown profile, section or key (listing the valid
    ones) and for a value of the wrong type, unit or range.
    """
    name = str(name)
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise TracesimError(f"profile file {name} does not exist")
        text = path.read_text()
        pname = path.stem
    else:
        names = profile_names()
        if name not in names:
            raise _unknown("profile", name, names)
        text = profile_dir().joinpath(f"{name}.toml").read_text()
        pname = name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TracesimError(f"profile {name}: invalid TOML ({exc})") from None
    profile = Profile(name=pname)
    for sec, table in data.items():
        if sec not in SECTIONS:
            raise _unknown(f"section in profile {name}:", sec, SECTIONS)
        if not isinstance(table, dict):
            raise TracesimError(f"profile {name}: [{sec}] must be a table")
        for key, val in table.items():
            _set_value(profile, f"{sec}.{key}", val)
    for key, val in parse_overrides(overrides):
        _set_value(profile, key, val)
    _check(profile)
    return profile


def _check(profile: Profile) -> None:
    """Cross-field checks that a single value cannot express."""
    e = profile.etcd
    if e.read_delay_ratio > 1:
        raise TracesimError(
            f"etcd.read_delay_ratio is a probability, got {e.read_delay_ratio:g}: set "
            "it between 0 and 1"
        )
    a = profile.apiserver
    if set(a.apf_shares) != set(a.apf_queues):
        raise TracesimError(
            "apiserver.apf_shares and apiserver.apf_queues must name the same levels"
        )
    if a.apf_enabled and sum(a.apf_shares.values()) <= 0:
        raise TracesimError("apiserver.apf_shares must have a positive total")
    if a.max_requests_inflight + a.max_mutating_requests_inflight <= 0:
        raise TracesimError("apiserver max-in-flight seats must have a positive total")
