"""Re-fit a saved calibration's puts with the shared-CPU etcd model from a hand start (the
experiment of docs/validation.md, "A shared CPU pool"; superseded by the calibration's own
shared-CPU fit: `tracesim calibrate etcd --from-report DIR --out P.toml` re-fits a saved run).

The patch applies to tracesim at commit 55899c3, before that fit existed. Usage, from the
repository root, on a scratch copy of the tree at that commit:

    git apply docs/experiments/etcd-shared-cpu.patch
    CPUCV=1 python docs/experiments/refit_shared_cpu.py TAG 250 \
        etcd-here-calibration/ etcd-here.toml

The calibration directory must hold points with ``client_cpu_us_per_request`` (runs from
2026-11-29 17:54 on). The read parameters are taken from the run's fitted profile; the write
path is fitted from a hand start (``key=value`` arguments override it). ``CPUCV=1``: the
spread fit uses a lognormal CV per CPU job (``cpu_cv_ratio``) instead of apply stalls;
``SPREAD=0``: means only; ``CORES``: the pool's cores (default 2). The model's CPU pool
(``cpu_cores`` and its parameters, ``tracesim/models/etcd.py``) and the client thread on it
(``tracesim/calibrate/validate.py``) are in the code; the patch only lets the write fit take
larger first steps and the spread fit start ``cpu_cv_ratio`` (not yet part of the fit).
"""

import dataclasses
import importlib
import json
import os
import sys
import time
import tomllib

import pandas as pd

from tracesim.calibrate.validate import TOLERANCE, compare
from tracesim.models.params import EtcdParams

# The module, not the package's re-exported fit() function of the same name.
F = importlib.import_module("tracesim.calibrate.fit")

tag, evals, d, valfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(valfile, "rb") as fh:
    vals = tomllib.load(fh)
vals = vals.get("etcd", vals)
READ = [
    "client_rtt_ms",
    "peer_rtt_ms",
    "read_concurrency",
    "range_base_us",
    "range_us_per_object",
    "read_sharing",
    "read_cv_ratio",
    "read_wakeup_us",
    "read_front_us",
    "read_index_us",
]
base = EtcdParams(
    **{k: vals[k] for k in READ if k in vals},
    apply_pipelined=True,
    cpu_cores=int(os.environ.get("CORES", 2)),
    backend_commit_ms=1.0,
)
keys = tuple(
    os.environ.get(
        "KEYS",
        "fsync_ms,front_cpu_us,front_cpu_ns_per_byte,apply_us_per_request,ns_per_byte,wal_cpu_us_per_entry,wal_cpu_us_per_batch,write_overhead_us,wal_ns_per_byte",
    ).split(",")
)
start = dict(
    fsync_ms=0.27,
    front_cpu_us=100,
    front_cpu_ns_per_byte=10,
    apply_us_per_request=100,
    ns_per_byte=5,
    wal_cpu_us_per_entry=100,
    wal_cpu_us_per_batch=400,
    write_overhead_us=100,
    wal_ns_per_byte=2,
    backend_commit_ms=1.0,
)
for kv in sys.argv[5:]:
    k, v = kv.split("=")
    start[k] = float(v)
F.FLOORS.update({k: 0.5 for k in ("front_cpu_us", "wal_cpu_us_per_entry", "wal_cpu_us_per_batch")})
F.FLOORS["front_cpu_ns_per_byte"] = 0.01
if os.environ.get("CPUCV"):
    F.STALL_KEYS = ("fsync_cv_ratio", "cpu_cv_ratio", "backend_commit_ns_per_byte")
points = pd.read_parquet(f"{d}/points.parquet")
t = time.time()
wv, loss, ev, used = F.fit_writes(points, base, start=start, keys=keys, max_evals=evals)
print("first loss", round(loss, 4), "evals", ev, round(time.time() - t))
path = F.WritePath(wv, {}, loss, float("nan"), ev, used, dataclasses.replace(base, **wv))
if os.environ.get("SPREAD", "1") == "1":
    path = F._fit_spread_and_means(path, points, 120, keys)
    print(
        "final loss",
        round(path.loss, 4),
        "spread",
        round(path.spread_loss, 4),
        round(time.time() - t),
    )
print(json.dumps({**path.write_vals, **path.spread_vals}))
tab = compare(path.base, points[points.phase == "write"])
wp = points[points.phase == "write"].set_index("point")
tab["role"] = wp.loc[tab.point, "role"].values
tab.to_parquet(f"refit-{tag}.parquet")  # the whole table, for a closer look
held = tab[tab.role == "validate"]
for m in ("mean_ms", "p99_ms", "throughput_per_s"):
    e = held[f"{m}_error"].abs()
    print(
        f"{m}: {(e <= TOLERANCE).sum()}/{len(held)} within (writes), "
        f"median {e.median():.0%} max {e.max():.0%}"
    )
pd.set_option("display.width", 200)
print(
    tab[
        [
            "size_class",
            "concurrency",
            "role",
            "mean_ms_error",
            "p99_ms_error",
            "throughput_per_s_error",
            "puts_per_fsync_measured",
            "puts_per_fsync_predicted",
        ]
    ]
    .round(3)
    .to_string()
)
