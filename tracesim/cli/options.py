"""Parsing shared by several commands' options."""

from __future__ import annotations

import re

from ..errors import TracesimError

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str, option: str = "--duration") -> float:
    """``90``, ``90s``, ``30m``, ``1.5h``, ``1h30m``, ``2d`` -> seconds.

    Raises :class:`TracesimError` naming ``option`` when ``text`` is not a duration.
    """
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise TracesimError(f"{option} {text!r}: not a duration (use e.g. 90s, 30m, 1h, 1h30m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)
