"""What a synthetic trace is made of: its parameters and the shapes it draws from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ...errors import TracesimError

US = 1_000_000
RESOURCES = ("pods", "nodes", "leases", "events")
HEARTBEAT_MODES = ("lease", "nodestatus")

# Node shapes: (instance type, cpu cores, memory GiB, GPUs, GPU model, weight).
NODE_SHAPES = [
    ("m5.2xlarge", 8, 32, 0, None, 0.25),
    ("m5.4xlarge", 16, 64, 0, None, 0.30),
    ("c5.9xlarge", 36, 72, 0, None, 0.15),
    ("r5.4xlarge", 16, 128, 0, None, 0.12),
    ("m5.16xlarge", 64, 256, 0, None, 0.13),
    ("p4d.24xlarge", 96, 1152, 8, "A100", 0.05),
]
# Pod templates: (cpu milli, memory MiB, weight). Small requests dominate real clusters; memory
# about 2 GiB per requested core (our choice, between the node shapes' 2 and 8 GiB per core).
POD_SHAPES = [
    (100, 256, 0.20),
    (250, 512, 0.25),
    (500, 1024, 0.20),
    (1000, 2048, 0.15),
    (1000, 4096, 0.08),
    (2000, 4096, 0.08),
    (4000, 8192, 0.04),
]
DAEMONSETS = [("kube-proxy", 100, 128), ("node-exporter", 100, 64), ("fluent-bit", 100, 200)]
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic trace. Times are seconds; rates are per second."""

    nodes: int = 100
    duration_s: float = 3600.0
    seed: int = 0
    start: str = "2026-01-05T08:00:00+00:00"
    resources: tuple[str, ...] = RESOURCES
    #: ``lease``: Lease renewals + NodeStatus every ``node_status_report_s``; ``nodestatus``:
    #: the pre-1.14 mode, the whole Node object every ``heartbeat_interval_s`` (KEP-589).
    heartbeat: str = "lease"
    heartbeat_interval_s: float = 10.0
    node_status_report_s: float = 300.0
    #: Node object size in NodeStatus updates, bytes ("easily exceed 15 kB", KEP-589).
    node_size_bytes: int = 16_000
    lease_size_bytes: int = 450
    #: Pods per node at the start (Deployments + DaemonSets), before Jobs: 20, as in Alibaba's
    #: 10,000-node clusters of "about 200,000 pods" (Alibaba Cloud blog, 2019).
    pods_per_node: float = 20.0
    #: Deployment pod replacements per node per second (20/s at 10k nodes: the SLO churn).
    churn_per_node_s: float = 0.002
    #: Job arrivals per hour per 1,000 nodes; pods per Job (geometric mean).
    jobs_per_hour_per_1k_nodes: float = 30.0
    job_pods_mean: float = 20.0
    job_runtime_median_s: float = 300.0
    job_ttl_after_finished_s: float = 600.0
    #: Amplitude of the daily pattern of arrivals (0 = flat), peak at 14:00 UTC.
    daily_amplitude: float = 0.3
    #: A rollout storm: this fraction of Deployments rolls out at ``rollout_at_s`` (default:
    #: mid-trace) within ``rollout_window_s``. ``rollout_fraction = 0`` turns it off.
    rollout_fraction: float = 0.25
    rollout_at_s: float | None = None
    rollout_window_s: float = 120.0
    #: An extra burst of pods (one Job per 1,000 pods) at ``burst_at_s``; 0 = none.
    burst_pods: int = 0
    burst_at_s: float | None = None
    #: Events are generated and written in windows of this much trace time (memory bound).
    window_s: float = 300.0

    def validate(self) -> None:
        """Raise :class:`TracesimError` naming the first bad parameter."""
        if self.nodes < 1:
            raise TracesimError("--nodes must be at least 1")
        if not self.duration_s > 0:
            raise TracesimError("--duration must be positive, e.g. 30m or 1h")
        bad = [r for r in self.resources if r not in RESOURCES]
        if bad:
            raise TracesimError(
                f"unknown resource(s) {', '.join(bad)}; choose from {', '.join(RESOURCES)}"
            )
        if self.heartbeat not in HEARTBEAT_MODES:
            raise TracesimError(f"--heartbeat must be one of {', '.join(HEARTBEAT_MODES)}")
        if self.heartbeat_interval_s <= 0 or self.node_status_report_s <= 0:
            raise TracesimError("heartbeat intervals must be positive")
        if not 0 <= self.daily_amplitude < 1:
            raise TracesimError("daily amplitude must be in [0, 1)")
        if not 0 <= self.rollout_fraction <= 1:
            raise TracesimError("rollout fraction must be in [0, 1]")
        if self.burst_pods < 0 or self.pods_per_node < 0 or self.churn_per_node_s < 0:
            raise TracesimError("pod counts and rates must not be negative")
        try:
            _parse_start(self.start)
        except ValueError:
            raise TracesimError(f"--start {self.start!r} is not an ISO 8601 time") from None


def _parse_start(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * US)
