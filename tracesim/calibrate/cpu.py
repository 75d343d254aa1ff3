"""Where the calibration's CPU went, and when that makes its numbers etcd's plus its own.

The calibration records, per point, the CPU time per request of the etcd process
(``etcd_cpu_us_per_request``, from etcd's ``process_cpu_seconds_total``) and of the
calibration's own client (``client_cpu_us_per_request``, this process's CPU time). Times the
point's throughput they are cores busy. Two things they can show, each a note for the user:

- **The client was the limit.** The client is one Python process; where it kept about a
  core busy (:data:`CLIENT_BUSY_CORES`), the measured throughput of that point may be the
  client's ceiling, not etcd's.
- **etcd shared its CPU with the client.** With the endpoint on this machine (a loopback
  address), where etcd and the client together kept most of the machine's cores busy
  (:data:`SHARED_BUSY_SHARE`), the fitted profile describes etcd *sharing its CPU with this
  client*; a profile of etcd alone needs the calibration run from another machine
  (docs/validation.md, "Where the CPU goes").
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

#: Cores of CPU the client used at a point from which it counts as the likely limit.
CLIENT_BUSY_CORES = 0.8
#: Share of this machine's cores etcd and the client used together from which the
#: measurement counts as one of etcd sharing its CPU (loopback endpoints only).
SHARED_BUSY_SHARE = 0.7


def is_loopback(endpoint: str) -> bool:
    """True if ``endpoint`` (a URL) names this machine: ``localhost`` or a loopback address."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def point_name(row: Any) -> str:
    """A point in words: ``400 B puts at 256 in flight``, ``serializable gets at 8 in
    flight``, ``linearizable ranges of 100 keys at 1 in flight``."""
    n = int(row["concurrency"])
    if row["phase"] == "write":
        return f"{int(row['value_bytes']):,} B puts at {n} in flight"
    keys = int(row["keys_per_request"])
    what = "gets" if row["op"] == "get" else f"ranges of {keys:,} keys"
    return f"{row['consistency']} {what} at {n} in flight"


def cores_busy(points: pd.DataFrame) -> pd.DataFrame:
    """The write and read points with their cores busy: ``etcd_cores`` and ``client_cores``
    (CPU per request x throughput; NaN where the CPU was not measured)."""
    rows = points[points["phase"].isin(["write", "read"])].copy()
    for who in ("etcd", "client"):
        col = f"{who}_cpu_us_per_request"
        per_request = rows[col] if col in rows else float("nan")
        rows[f"{who}_cores"] = per_request * rows["throughput_per_s"] / 1e6
    return rows


def shared_cpu_cores(points: pd.DataFrame, endpoint: str, cores: int | None = None) -> int:
    """The cores of the etcd model's CPU pool when the calibration does not say: ``cores``
    (default this machine's) if etcd runs here (a loopback ``endpoint``) and the client's
    CPU was measured on the puts, so the calibration's replay can run the client's work
    beside etcd's on the same cores; else 0 (no pool)."""
    puts = points[points["phase"] == "write"]
    col = "client_cpu_us_per_request"
    measured = col in puts and bool((puts[col] > 0).any())
    return (cores or os.cpu_count() or 1) if is_loopback(endpoint) and measured else 0


def cpu_notes(
    points: pd.DataFrame, endpoint: str, cores: int | None = None, pooled: bool = False
) -> list[str]:
    """Notes on the CPU the measurement used (see the module docstring): the client's
    busiest point if it reached :data:`CLIENT_BUSY_CORES`, and, for a loopback ``endpoint``,
    the busiest point of etcd and the client together if it reached
    :data:`SHARED_BUSY_SHARE` of ``cores`` (default: this machine's). ``pooled``: the fitted
    model has a CPU pool on which the client's measured CPU was replayed (the note then says
    so instead of advising another machine). Empty when nothing crossed a threshold or the
    CPU was not measured."""
    rows = cores_busy(points).dropna(subset=["etcd_cores", "client_cores"])
    if rows.empty:
        return []
    notes = []
    busy = rows[rows["client_cores"] >= CLIENT_BUSY_CORES]
    if len(busy):
        top = busy.loc[busy["client_cores"].idxmax()]
        notes.append(
            f"the calibration's client kept {top['client_cores']:.2f} of a core busy at "
            f"{point_name(top)} ({len(busy)} of {len(rows)} points at "
            f"{CLIENT_BUSY_CORES:g} or more): there the measured throughput may be this "
            "client's limit rather than etcd's"
        )
    cores = cores or os.cpu_count() or 1
    if is_loopback(endpoint):
        both = rows["etcd_cores"] + rows["client_cores"]
        share = both / cores
        if float(share.max()) >= SHARED_BUSY_SHARE:
            top = rows.loc[share.idxmax()]
            notes.append(
                f"etcd and the calibration's client kept {float(share.max()):.0%} of this "
                f"machine's {cores} cores busy at {point_name(top)} (etcd "
                f"{top['etcd_cores']:.2f}, client {top['client_cores']:.2f} cores): "
                + (
                    "the model's CPU pool ran the client's measured CPU beside etcd's, so "
                    "the profile's etcd has the cores to itself"
                    if pooled
                    else "the profile describes etcd sharing its CPU with this client; for "
                    "etcd alone, run the calibration from another machine"
                )
            )
    return notes
