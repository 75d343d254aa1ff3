"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1.5``, ``100Ki``, ``1e3``).

The grammar is the one of ``k8s.io/apimachinery/pkg/api/resource.Quantity``: a signed decimal
number (``1``, ``1.5``, ``.5``, ``1.``) followed by a binary-SI suffix (``Ki`` .. ``Ei``), a
decimal-SI suffix (``n u m k M G T P E``) or a decimal exponent (``e3``, ``E-2``). No
whitespace is allowed anywhere, as in ``resource.ParseQuantity``. Values are parsed exactly
(``Decimal`` with unbounded precision) and rounded *up*, away from zero, to integers, as
``Quantity.MilliValue()`` and ``Quantity.Value()`` do.
"""

from __future__ import annotations

import math
import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_UP, Context, Decimal
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_PATTERN = re.compile(
    r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?",
    re.ASCII,  # \d would otherwise match any Unicode digit ("١"), which Kubernetes rejects
)
# Exact arithmetic: the default context (28 digits, half-even) would silently round large
# values such as 2**100 Ei. Multiplication and scaleb of exact operands stay exact here.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
# Kubernetes parses a decimal exponent as an int32 (``strconv.ParseInt(.., 10, 32)``).
_MAX_EXPONENT = 2**31 - 1
_INT64_MAX = 2**63 - 1


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity, or one too large for an int64 column."""


def parse_quantity(text: str | int | float) -> Decimal:
    """Return the exact value of a quantity (``"2Gi"`` -> ``Decimal(2147483648)``).

    Plain ints and floats (as YAML may produce) are accepted. Raises :class:`QuantityError`
    for anything else, including unhashable values such as a mapping.
    """
    if isinstance(text, bool):  # before int: bool is an int subclass
        raise QuantityError(f"not a quantity: {text!r}")
    if isinstance(text, int | float):
        if isinstance(text, float) and not math.isfinite(text):
            raise QuantityError(f"not a quantity: {text!r}")
        return Decimal(str(text))
    if not isinstance(text, str):
        raise QuantityError(f"not a quantity: {text!r} (expected e.g. 500m, 2Gi, 1.5, 100Ki)")
    return _parse_string(text)


@lru_cache(maxsize=4096)
def _parse_string(text: str) -> Decimal:
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise QuantityError(f"not a quantity: {text!r} (expected e.g. 500m, 2Gi, 1.5, 100Ki)")
    number = Decimal(match["num"])  # exact: the regex admits only valid decimal literals
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return _EXACT.multiply(number, Decimal(_BINARY[suffix]))
    if suffix in _DECIMAL_EXP:  # before the exponent case: a lone "E" is exa (10^18)
        exponent = _DECIMAL_EXP[suffix]
    else:
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f"not a quantity: {text!r} (exponent out of range)")
    return _EXACT.scaleb(number, exponent)


def _round_away(value: Decimal, text: str | int | float) -> int:
    # Refuse before materialising an int of millions of digits (e.g. "1e2000000000").
    if value and value.adjusted() > 24:
        raise QuantityError(f"quantity out of range for a 64-bit count: {text!r}")
    result = int(value.to_integral_value(rounding=ROUND_UP, context=_EXACT))
    if abs(result) > _INT64_MAX:
        raise QuantityError(f"quantity out of range for a 64-bit count: {text!r}")
    return result


def to_milli(text: str | int | float) -> int:
    """Quantity in thousandths, rounded up away from zero (``"500m"`` -> 500, ``"1.5"`` -> 1500,
    ``"0.1m"`` -> 1), as ``Quantity.MilliValue()``. Raises :class:`QuantityError`."""
    return _round_away(_EXACT.scaleb(parse_quantity(text), 3), text)


def to_int(text: str | int | float) -> int:
    """Quantity as an integer, rounded up away from zero (``"2Gi"`` -> 2147483648, ``"100m"``
    -> 1), as ``Quantity.Value()``. Raises :class:`QuantityError`."""
    return _round_away(parse_quantity(text), text)
