"""Kubernetes label and field selectors: parse once per request, match per object.

Label selectors follow ``k8s.io/apimachinery/pkg/labels``: comma-separated requirements
``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``,
``key>N``, ``key<N``; all requirements must hold. ``!=`` and ``notin`` also match objects
without the label, as the API server does. Field selectors follow
``k8s.io/apimachinery/pkg/fields``: ``field=v``, ``field==v``, ``field!=v``, comma-separated,
with ``\\`` escaping ``,``, ``=`` and ``\\`` in values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


class SelectorError(ValueError):
    """A selector the API server would reject (HTTP 400)."""


@dataclass(frozen=True)
class LabelRequirement:
    """One label requirement: ``op`` is one of = != in notin exists !exists gt lt."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True if ``labels`` (key -> value) satisfy this requirement."""
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if op in ("=", "in"):
            return value is not None and value in self.values
        if op in ("!=", "notin"):
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(next(iter(self.values)))
        return number > bound if op == "gt" else number < bound


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in label selector {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise SelectorError(f"unbalanced '(' in label selector {text!r}")
    parts.append(text[start:])
    return parts


def _check_key(key: str, text: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_CMP_RE = re.compile(rf"^({_KEY})\s*(==|!=|=|>|<)\s*(.*)$")


def parse_label_selector(text: str | None) -> tuple[LabelRequirement, ...]:
    """Parse ``text`` into requirements (all must hold); empty or None selects everything.

    Raises :class:`SelectorError` on a malformed selector.
    """
    if not text or not text.strip():
        return ()
    reqs = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"empty requirement in label selector {text!r}")
        if m := _SET_RE.match(part):
            values = [_check_value(v.strip(), text) for v in m[3].split(",")]
            reqs.append(LabelRequirement(m[1], m[2], frozenset(values)))
        elif m := _CMP_RE.match(part):
            key, op, value = m[1], m[2], m[3].strip()
            if op in (">", "<"):
                if not re.fullmatch(r"-?\d+", value):
                    raise SelectorError(f"{op} needs an integer in label selector {text!r}")
                reqs.append(LabelRequirement(key, "gt" if op == ">" else "lt", frozenset([value])))
            else:
                reqs.append(
                    LabelRequirement(
                        key, "!=" if op == "!=" else "=", frozenset([_check_value(value, text)])
                    )
                )
        elif part.startswith("!"):
            reqs.append(LabelRequirement(_check_key(part[1:].strip(), text), "!exists"))
        else:
            reqs.append(LabelRequirement(_check_key(part, text), "exists"))
    return tuple(reqs)


def labels_match(reqs: tuple[LabelRequirement, ...], labels: Mapping[str, str]) -> bool:
    """True if ``labels`` satisfy every requirement."""
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    """``field = value`` (``negate`` False) or ``field != value`` (``negate`` True)."""

    field: str
    value: str
    negate: bool = False

    def matches(self, fields: Mapping[str, str]) -> bool:
        """True if the object's field values (field path -> string) satisfy this term."""
        equal = fields.get(self.field, "") == self.value
        return not equal if self.negate else equal


def _split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash escape; escapes are kept."""
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(
    text: str | None, supported: frozenset[str] | None = None
) -> tuple[FieldRequirement, ...]:
    """Parse a field selector; ``supported`` limits the field paths allowed (as the API server
    does per resource). Raises :class:`SelectorError` naming a bad term or unsupported field."""
    if not text or not text.strip():
        return ()
    reqs = []
    for part in _split_escaped(text, ","):
        part = part.strip()
        if not part:
            raise SelectorError(f"empty term in field selector {text!r}")
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)(.*)$", part)
        if m is None:
            raise SelectorError(
                f"invalid field selector term {part!r}: expected field=value or field!=value"
            )
        field = m[1].strip()
        if supported is not None and field not in supported:
            raise SelectorError(
                f"field label not supported: {field} (supported: {', '.join(sorted(supported))})"
            )
        reqs.append(FieldRequirement(field, _unescape(m[3]), negate=m[2] == "!="))
    return tuple(reqs)


def fields_match(reqs: tuple[FieldRequirement, ...], fields: Mapping[str, str]) -> bool:
    """True if the object's fields satisfy every term."""
    return all(r.matches(fields) for r in reqs)
