"""Kubernetes quantity parsing: the grammar of ``resource.ParseQuantity`` and the rounding of
``Quantity.MilliValue()`` / ``Quantity.Value()``."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.trace.quantity import QuantityError, parse_quantity, to_int, to_milli

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("500m", Fraction(1, 2)),
        ("2Gi", 2 * 2**30),
        ("1.5", Fraction(3, 2)),
        ("100Ki", 102_400),
        (".5", Fraction(1, 2)),
        ("1.", 1),
        ("+1.5", Fraction(3, 2)),
        ("-1.5", Fraction(-3, 2)),
        ("0", 0),
        ("-0", 0),
        ("007", 7),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1e+3", 1000),
        ("15e-1", Fraction(3, 2)),
        ("1.5E-3", Fraction(3, 2000)),
        ("1E", 10**18),  # a lone E is the exa suffix, not an exponent
        ("2E", 2 * 10**18),
        ("1n", Fraction(1, 10**9)),
        ("3u", Fraction(3, 10**6)),
        ("1k", 1000),
        ("1M", 10**6),
        ("4G", 4 * 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1Ei", 2**60),
        ("1.5Gi", 3 * 2**29),
        ("0.5Ki", 512),
        ("62912688Ki", 62_912_688 * 1024),
        ("64000m", 64),
        ("262144Mi", 262_144 * 2**20),
    ],
)
def test_parse_exact_value(text: str, exact: Fraction | int) -> None:
    assert Fraction(parse_quantity(text)) == exact


@pytest.mark.parametrize(
    ("text", "milli", "value"),
    [
        ("500m", 500, 1),  # Value() rounds 0.5 up to 1
        ("100m", 100, 1),
        ("1", 1000, 1),
        ("1.5", 1500, 2),
        ("0.1m", 1, 1),  # MilliValue() rounds 0.1 milli up to 1
        ("1n", 1, 1),
        ("999999n", 1, 1),
        ("1000001n", 2, 1),
        ("2Gi", 2 * 2**30 * 1000, 2 * 2**30),
        ("1.0000001Ki", 1_024_001, 1025),
        ("0", 0, 0),
        ("-1.5", -1500, -2),  # away from zero, as int64Amount's negativeScaleInt64
        ("-0.5m", -1, -1),
        ("-100m", -100, -1),
    ],
)
def test_rounding_up_away_from_zero(text: str, milli: int, value: int) -> None:
    assert to_milli(text) == milli
    assert to_int(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.5.2",
        "Mi",
        "m",
        ".",
        "-",
        "+",
        "10 Gi",
        " 1",
        "1 ",
        "1Kb",
        "1K",  # decimal kilo is lower-case k
        "1KI",
        "1ki",
        "1mi",
        "1Gib",
        "1e",
        "1e+",
        "1e1.5",
        "1ee3",
        "1.5e3.2",
        "1,5",
        "0x10",
        "--1",
        "+-1",
        "1_000",
        "inf",
        "NaN",
        "1Gi1",
        "1\n",
        "١",  # Arabic-Indic digit one: \d matches it in Python, not in Kubernetes
        "1e99999999999",  # the exponent must fit an int32
    ],
)
def test_malformed_strings_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize("value", [True, False, None, float("nan"), float("inf"), [], {}])
def test_non_quantity_values_are_rejected(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)  # type: ignore[arg-type]


def test_yaml_numbers_are_accepted() -> None:
    assert to_int(1001) == 1001
    assert to_milli(1.5) == 1500
    assert to_milli(2) == 2000
    # True == 1 in Python: the cache must not hand the value of 1 to True.
    assert to_int(1) == 1
    with pytest.raises(QuantityError):
        to_int(True)


def test_values_beyond_int64_are_errors_not_giant_ints() -> None:
    assert to_int("9223372036854775807") == 2**63 - 1
    assert to_int("7Ei") == 7 * 2**60
    for text in ("9223372036854775808", "8Ei", "1e30", "1e2000000000"):
        with pytest.raises(QuantityError, match="out of range"):
            to_int(text)
    with pytest.raises(QuantityError, match="out of range"):
        to_milli("1E")  # 10^21 milli does not fit an int64


def test_large_values_are_exact() -> None:
    # The default decimal context keeps 28 digits; 2^100 Ei has 49.
    assert parse_quantity(f"{2**100}Ei") == 2**160
    assert parse_quantity("1234567890123456789012345678901234567890") == Decimal(
        "1234567890123456789012345678901234567890"
    )


def _away(x: Fraction) -> int:
    """Round away from zero to an integer."""
    mag = -(-abs(x).numerator // abs(x).denominator)
    return mag if x >= 0 else -mag


suffixes = st.sampled_from(sorted(BINARY) + sorted(DECIMAL))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(-(10**12), 10**12), suffix=suffixes)
def test_int_with_suffix_equals_arithmetic(n: int, suffix: str) -> None:
    factor = BINARY.get(suffix) or DECIMAL[suffix]
    expected = Fraction(n) * factor
    assert Fraction(parse_quantity(f"{n}{suffix}")) == expected
    if abs(expected) < 2**62:
        assert to_int(f"{n}{suffix}") == _away(expected)
    if abs(expected) * 1000 < 2**62:
        assert to_milli(f"{n}{suffix}") == _away(expected * 1000)


@settings(max_examples=100, deadline=None)
@given(
    whole=st.integers(0, 10**9),
    frac=st.text("0123456789", min_size=0, max_size=9),
    exponent=st.integers(-20, 20),
    sign=st.sampled_from(["", "+", "-"]),
    letter=st.sampled_from("eE"),
)
def test_decimal_with_exponent_equals_arithmetic(
    whole: int, frac: str, exponent: int, sign: str, letter: str
) -> None:
    text = f"{sign}{whole}.{frac}{letter}{exponent}"
    mantissa = Fraction(whole) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    expected = (-1 if sign == "-" else 1) * mantissa * Fraction(10) ** exponent
    assert Fraction(parse_quantity(text)) == expected
    if abs(expected) * 1000 < 2**62:
        assert to_milli(text) == _away(expected * 1000)
