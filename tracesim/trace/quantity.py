"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1.5``, ``100Ki``, ``1e3``).

The grammar is the one of ``k8s.io/apimachinery/pkg/api/resource.Quantity``: a signed decimal
number followed by a binary-SI suffix (``Ki`` .. ``Ei``), a decimal-SI suffix (``n u m k M G T
P E``) or a decimal exponent (``e3``, ``E-2``). Values are parsed exactly (``Decimal``) and
rounded *up* to integers, as ``Quantity.MilliValue()`` and ``Quantity.Value()`` do.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_PATTERN = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


@lru_cache(maxsize=4096)
def parse_quantity(text: str | int | float) -> Decimal:
    """Return the exact value of a quantity (``"2Gi"`` -> ``Decimal(2147483648)``).

    Plain ints and floats (as YAML may produce) are accepted. Raises :class:`QuantityError`.
    """
    if isinstance(text, bool):
        raise QuantityError(f"not a quantity: {text!r}")
    if isinstance(text, int | float):
        if isinstance(text, float) and not math.isfinite(text):
            raise QuantityError(f"not a quantity: {text!r}")
        return Decimal(str(text))
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise QuantityError(f"not a quantity: {text!r} (expected e.g. 500m, 2Gi, 1.5, 100Ki)")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid numbers
        raise QuantityError(f"not a quantity: {text!r}") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _DECIMAL[suffix]


def to_milli(text: str | int | float) -> int:
    """Quantity in thousandths, rounded up (``"500m"`` -> 500, ``"1.5"`` -> 1500)."""
    return math.ceil(parse_quantity(text) * 1000)


def to_int(text: str | int | float) -> int:
    """Quantity as an integer, rounded up (``"2Gi"`` -> 2147483648, ``"100m"`` -> 1)."""
    return math.ceil(parse_quantity(text))
