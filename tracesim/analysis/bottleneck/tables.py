"""The result files of one replay, read for the bottleneck analysis, and the profile
parameters its ``summary.json`` records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import TracesimError

#: Columns of ``requests.parquet`` the analysis reads (plus ``size_bytes`` when present).
REQUEST_COLUMNS = ["t_s", "latency_s", "verb", "resource", "scope", "reason"]


@dataclass
class RunTables:
    """The result files of one replay, as read from its directory."""

    path: Path
    summary: dict[str, Any]
    components: pd.DataFrame
    requests: pd.DataFrame
    pods: pd.DataFrame | None = None


def load_run(run_dir: str | Path) -> RunTables:
    """Read the tables of a ``tracesim replay --profile`` output directory.

    Raises :class:`TracesimError` (one line, with the fix) when ``run_dir`` is not a replay
    output or was replayed without ``--profile`` (no control-plane tables).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TracesimError(f"{run_dir}: not a directory; give a replay --out or sweep directory")
    path = run_dir / "summary.json"
    if not path.is_file():
        raise TracesimError(
            f"{run_dir}: no summary.json; give a `tracesim replay --out` or `tracesim sweep` "
            "directory"
        )
    try:
        summary = json.loads(path.read_text())
    except ValueError as exc:
        raise TracesimError(f"{path}: not valid JSON ({exc}); replay again") from None
    comp = run_dir / "components.parquet"
    req = run_dir / "requests.parquet"
    if "control_plane" not in summary or not comp.is_file() or not req.is_file():
        raise TracesimError(
            f"{run_dir}: no control-plane results (components.parquet, requests.parquet); "
            "replay with --profile current or --profile 2019-era"
        )
    try:
        components = pd.read_parquet(comp, columns=["t_s", "metric", "value"])
        cols = REQUEST_COLUMNS + (["size_bytes"] if "size_bytes" in _parquet_columns(req) else [])
        requests = pd.read_parquet(req, columns=cols)
        pods_path = run_dir / "pods.parquet"
        pods = None
        if pods_path.is_file():
            want = ["created_s", "bound_s", "deleted_s", "attempts", "startup_s", "node"]
            have = _parquet_columns(pods_path)
            pods = pd.read_parquet(pods_path, columns=[c for c in want if c in have])
    except (OSError, ValueError, KeyError) as exc:
        raise TracesimError(f"{run_dir}: unreadable result table ({exc}); replay again") from None
    return RunTables(run_dir, summary, components, requests, pods)


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def profile_params(summary: dict[str, Any]) -> dict[str, Any]:
    """The profile's parameters as ``summary.json`` records them
    (``control_plane.parameters``: section -> key -> value); empty when absent."""
    return (summary.get("control_plane") or {}).get("parameters") or {}


def profile_param(params: dict[str, Any], section: str, key: str, default: float) -> float:
    """One numeric parameter of :func:`profile_params` (``params[section][key]``), or
    ``default`` when it is missing or not a number."""
    v = (params.get(section) or {}).get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default
