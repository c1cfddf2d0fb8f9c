"""Filters on an event's ``data``: containment of a JSON object, comparisons on a top-level key.

Both follow PostgreSQL's jsonb rules, and every backend gives the same answers:

- ``data_contains``: jsonb ``@>``. Objects contain their sub-objects recursively;
  an array contains another when each element of the latter is contained in some
  element of the former; scalars are equal only with the same JSON type
  (``true`` is not ``1``, ``"1"`` is not ``1``; ``1`` equals ``1.0``).
- ``data_where``: ``(key, op, value)`` on a top-level key. Numbers compare
  numerically, strings by code point (PostgreSQL compares under ``COLLATE "C"``,
  not the database collation); booleans and null take only ``=`` and ``!=``. A
  missing key, or a value of another JSON type, never matches, ``!=`` included.
  What logging stored as text (a ``Decimal``, a ``datetime``) compares as text:
  ``"10.0" < "9"``, and ``1`` matches no ``"1.5"``; store numbers as numbers.

This module validates them; each backend writes them in its SQL
(``Backend.data_clauses``): PostgreSQL with jsonb operators, SQLite and MariaDB
from their JSON functions, with the same answers.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._data import encode_data, storable_text
from ._errors import InvalidEventError
from ._models import DEFAULT_MAX_DATA_BYTES

__all__ = ["COMPARISONS", "OPERATORS", "Comparison", "DataFilter"]

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
# Python's comparisons build SQL from columns (and compare plain values in tests).
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Bounds on one containment filter: each level and element is a subquery on SQLite.
MAX_DEPTH = 8
MAX_NODES = 100
# Integers both backends bind and compare exactly (SQLite's are 64-bit).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

Scalar = str | int | float | bool | None


def _check_int(name: str, value: int) -> None:
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"{name}: integers must fit in 64 bits, got {value}")


def _check_contains(plain: Any) -> None:
    """Depth, size and integer range of a containment filter (already plain JSON)."""
    stack: list[tuple[Any, int]] = [(plain, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"data_contains holds more than {MAX_NODES} values")
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"data_contains is nested more than {MAX_DEPTH} levels deep")
            values = item.values() if isinstance(item, dict) else item
            stack.extend((value, depth + 1) for value in values)
        elif isinstance(item, int) and not isinstance(item, bool):
            _check_int("data_contains", item)


def _scalar(key: str, op: str, value: object) -> Scalar:
    """A ``data_where`` operand, checked against its operator."""
    if value is None or isinstance(value, bool):
        if op not in ("=", "!="):
            raise ValueError(
                f"data_where {key!r}: {value!r} can only be compared with = or !=, not {op}"
            )
        return value
    if isinstance(value, int):
        _check_int(f"data_where {key!r}", value)
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"data_where {key!r}: the number must be finite, not {value!r}")
        return float(value)
    if isinstance(value, str):
        _check_text(f"data_where {key!r}: the value", value)
        return str(value)
    raise ValueError(
        f"data_where {key!r}: the value must be a str, int, float, bool or None, "
        f"not {type(value).__name__}"
    )


def _check_text(name: str, value: str) -> None:
    if not storable_text(value):
        raise ValueError(f"{name} must be text without NUL characters or lone surrogates")


@dataclass(frozen=True, slots=True)
class Comparison:
    """One ``data_where`` condition: ``data[key] op value``."""

    key: str
    op: str
    value: Scalar

    @classmethod
    def parse(cls, item: object) -> Comparison:
        if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 3:
            raise ValueError(f"data_where items must be (key, op, value) triples, not {item!r}")
        key, op, value = item
        if not isinstance(key, str):
            raise ValueError(f"data_where keys must be strings, not {type(key).__name__}")
        _check_text("data_where keys", key)
        if not isinstance(op, str) or op not in OPERATORS:
            raise ValueError(
                f"data_where {key!r}: operator {op!r} is not one of {', '.join(OPERATORS)}"
            )
        return cls(str(key), op, _scalar(key, op, value))


@dataclass(frozen=True, slots=True)
class DataFilter:
    """Validated data filters; ``clauses`` renders them for a dialect."""

    contains: dict[str, Any] | None = None  # as JSON mode sees it
    contains_json: str | None = None  # the same, encoded (PostgreSQL binds it)
    where: tuple[Comparison, ...] = ()

    @classmethod
    def build(cls, contains: object = None, where: object = None) -> DataFilter | None:
        """None when there is nothing to filter; ``ValueError`` for anything unusable."""
        plain: dict[str, Any] | None = None
        text: str | None = None
        if contains is not None:
            if not isinstance(contains, Mapping):
                raise ValueError(
                    "data_contains must be a mapping (a JSON object), "
                    f"not {type(contains).__name__}"
                )
            try:
                plain, text = encode_data(contains, DEFAULT_MAX_DATA_BYTES)
            except InvalidEventError as exc:
                message = str(exc)  # "data ...", "data.a.b[1] ...": the path of the fault
                raise ValueError(
                    "data_contains" + message[4:] if message.startswith("data") else message
                ) from None
            _check_contains(plain)
        comparisons: tuple[Comparison, ...] = ()
        if where is not None:
            if isinstance(where, str | bytes | Mapping) or not isinstance(where, Sequence):
                raise ValueError(
                    "data_where must be a sequence of (key, op, value) triples, "
                    f"not {type(where).__name__}"
                )
            comparisons = tuple(Comparison.parse(item) for item in where)
        if plain is None and not comparisons:
            return None
        return cls(plain, text, comparisons)
