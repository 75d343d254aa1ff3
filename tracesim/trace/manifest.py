"""``manifest.json``: what a trace is, where it came from, what it holds.

The manifest is written when a trace is created (``status: "open"``) and rewritten when the
writer closes (``status: "complete"``), always atomically (temporary file, fsync, rename), so a
crash leaves either the old or the new manifest, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import TraceError
from .schema import FORMAT_NAME, FORMAT_VERSION, SOURCE_KINDS

MANIFEST_NAME = "manifest.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old or the new file only."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def new_manifest(
    source_kind: str,
    *,
    source: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A manifest for a trace being created. ``source_kind`` is one of ``SOURCE_KINDS``."""
    from .. import __version__

    if source_kind not in SOURCE_KINDS:
        raise ValueError(f"source kind must be one of {', '.join(SOURCE_KINDS)}")
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "status": "open",
        "source": {"kind": source_kind, **(source or {})},
        "cluster": cluster or {},
        "options": options or {},
        "time_span": None,
        "kinds": {},
        "events": {"rows": 0, "files": []},
    }


def read_manifest(trace_dir: Path) -> dict[str, Any]:
    """Load and check the manifest of ``trace_dir``; :class:`TraceError` if it is unusable."""
    path = trace_dir / MANIFEST_NAME
    if not trace_dir.exists():
        raise TraceError(f"{trace_dir}: no such trace directory")
    if not trace_dir.is_dir():
        raise TraceError(f"{trace_dir}: not a trace (a trace is a directory with {MANIFEST_NAME})")
    if not path.is_file():
        raise TraceError(f"{path}: missing; {trace_dir} is not a tracesim trace")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise TraceError(f'{path}: not a tracesim manifest ("format" is not {FORMAT_NAME!r})')
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise TraceError(f'{path}: "format_version" must be an integer, got {version!r}')
    if version > FORMAT_VERSION:
        raise TraceError(
            f"{path}: trace format version {version} is newer than this tracesim reads "
            f"(up to {FORMAT_VERSION}); upgrade tracesim"
        )
    if version < 1:
        raise TraceError(f"{path}: unknown trace format version {version}")
    for key, typ in (("source", dict), ("cluster", dict), ("options", dict)):
        if not isinstance(data.get(key, {}), typ):
            raise TraceError(f'{path}: "{key}" must be an object')
    return data
