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

PostgreSQL serves them with jsonb operators (``@>`` can use the optional GIN
index of ``_data_index``). SQLite has no containment operator, so the same rules
are built from ``json_each``. Keys are matched on ``json_each.key`` instead of
being written into JSON paths: SQLite's path syntax cannot quote a key holding a
double quote, and comparing the key as a bound value works for any text.
MariaDB's JSON functions have rules of their own, so there too the rules are
built from parts (see the MariaDB section below).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Numeric,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.selectable import TableValuedAlias

from ._errors import InvalidEventError
from ._models import DEFAULT_MAX_DATA_BYTES, encode_data, storable_text

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
                message = str(exc)
                raise ValueError(
                    "data_contains" + message[4:] if message.startswith("data ") else message
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

    def clauses(self, column: ColumnElement[Any], dialect: str) -> list[ColumnElement[bool]]:
        """WHERE clauses on the ``data`` column for ``dialect`` ("sqlite", "postgresql"
        or "mysql")."""
        where: list[ColumnElement[bool]] = []
        if self.contains is not None:
            if dialect == "postgresql":
                assert self.contains_json is not None
                where.append(column.op("@>", return_type=Boolean)(_jsonb(self.contains_json)))
            elif dialect == "mysql":
                where.append(_mysql_contains(column, self.contains))
            else:
                where.append(_sqlite_contains(column, self.contains))
        compare = {"postgresql": _postgres_compare, "mysql": _mysql_compare}.get(
            dialect, _sqlite_compare
        )
        where.extend(compare(column, comparison) for comparison in self.where)
        return where


# -- PostgreSQL -------------------------------------------------------------------------------

_JSONB_TYPE = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _jsonb(text: str) -> ColumnElement[Any]:
    return cast(literal(text, Text), JSONB)


def _postgres_compare(column: ColumnElement[Any], comparison: Comparison) -> ColumnElement[bool]:
    key, value = literal(comparison.key, Text), comparison.value
    field = column.op("->", return_type=JSONB)(key)
    same_type = func.jsonb_typeof(field) == _JSONB_TYPE[type(value)]
    compare = COMPARISONS[comparison.op]
    if isinstance(value, str):
        # Code point order whatever the database's collation, as on SQLite.
        text_value = column.op("->>", return_type=Text)(key).collate("C")
        return and_(same_type, compare(text_value, literal(value, Text)))
    # jsonb compares numbers numerically (1 = 1.0), booleans and null by value; the
    # type test first keeps other types out (jsonb orders across types).
    encoded = (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    )
    return and_(same_type, compare(field, _jsonb(encoded)))


# -- SQLite -----------------------------------------------------------------------------------

_NUMBER_TYPES = ("integer", "real")


def _each(document: ColumnElement[Any]) -> TableValuedAlias:
    """``json_each(document)`` as a FROM item with its key, value and type columns."""
    return func.json_each(document).table_valued("key", "value", "type").alias()


def _sqlite_scalar(entry: TableValuedAlias, value: Scalar) -> ColumnElement[bool]:
    """``entry`` (a json_each row) is this scalar, JSON type respected."""
    if value is None:
        return entry.c.type == "null"
    if isinstance(value, bool):
        return entry.c.type == ("true" if value else "false")
    if isinstance(value, int | float):
        return and_(entry.c.type.in_(_NUMBER_TYPES), entry.c.value == value)
    return and_(entry.c.type == "text", entry.c.value == literal(value, Text))


def _sqlite_element(entry: TableValuedAlias, value: Any) -> ColumnElement[bool]:
    """``entry`` contains ``value`` (jsonb containment of one member)."""
    if isinstance(value, dict | list):
        kind = "object" if isinstance(value, dict) else "array"
        # CASE, not AND: SQLite must not parse a scalar's value as JSON.
        members = _sqlite_members(entry.c.value, value)
        return case((entry.c.type == kind, and_(true(), *members)), else_=false())
    return _sqlite_scalar(entry, value)


def _sqlite_members(document: ColumnElement[Any], value: Any) -> list[ColumnElement[bool]]:
    """One EXISTS per key (object) or element (array) of ``value``, over ``document``."""
    found: list[ColumnElement[bool]] = []
    if isinstance(value, dict):
        for key, member in value.items():
            entry = _each(document)
            found.append(
                select(1)
                .select_from(entry)
                .where(entry.c.key == literal(key, Text), _sqlite_element(entry, member))
                .exists()
            )
    else:
        for member in value:
            entry = _each(document)
            found.append(
                select(1).select_from(entry).where(_sqlite_element(entry, member)).exists()
            )
    return found


def _sqlite_contains(column: ColumnElement[Any], value: dict[str, Any]) -> ColumnElement[bool]:
    """The data column contains ``value`` (NULL data never does)."""
    return and_(func.json_type(column) == "object", *_sqlite_members(column, value))


def _sqlite_compare(column: ColumnElement[Any], comparison: Comparison) -> ColumnElement[bool]:
    value, op = comparison.value, comparison.op
    entry = _each(column)
    if value is None or isinstance(value, bool):
        matched = _sqlite_scalar(entry, value)
        if op == "!=":
            # Another boolean is the other value; another null does not exist.
            matched = false() if value is None else _sqlite_scalar(entry, not value)
    else:
        kind = (
            entry.c.type.in_(_NUMBER_TYPES)
            if not isinstance(value, str)
            else entry.c.type == "text"
        )
        operand = literal(value, Text) if isinstance(value, str) else literal(value)
        matched = and_(kind, COMPARISONS[op](entry.c.value, operand))
    return (
        select(1)
        .select_from(entry)
        .where(entry.c.key == literal(comparison.key, Text), matched)
        .exists()
    )


# -- MariaDB ----------------------------------------------------------------------------------
#
# MariaDB's JSON is text with functions whose rules are not jsonb's (JSON_CONTAINS finds
# 1 in [1] and compares "1" with 1), so the same rules are built as on SQLite: JSON_TYPE
# for the type, JSON_EXTRACT for a member, JSON_TABLE for an array's elements. Keys go
# into JSON paths quoted (``$."key"``, backslash and double quote escaped), which
# MariaDB's path syntax allows for any text.

_MYSQL_NUMBER_TYPES = ("INTEGER", "DOUBLE")
# Code point order without pad space ("a" < "a "), as SQLite and COLLATE "C" compare.
_MYSQL_CODE_POINT = "utf8mb4_nopad_bin"


def _mysql_member(fragment: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """The JSON text of ``fragment``'s member ``key``; NULL when there is none."""
    path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return func.json_extract(fragment, literal(path, Text))


def _mysql_type(fragment: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.json_type(fragment)


def _mysql_number(fragment: ColumnElement[Any], op: str, value: int | float) -> ColumnElement[bool]:
    """A JSON number compared with ``value``: two integers exactly (as decimals), any
    other pair as doubles (exact for integers up to 2**53)."""
    as_double = COMPARISONS[op](
        fragment.op("+", return_type=Float())(literal_column("0E0")), literal(float(value))
    )
    if isinstance(value, float):
        return and_(_mysql_type(fragment).in_(_MYSQL_NUMBER_TYPES), as_double)
    as_decimal = COMPARISONS[op](cast(fragment, Numeric(65, 0)), literal(value, Numeric(65, 0)))
    return case(
        (_mysql_type(fragment) == "INTEGER", as_decimal),
        (_mysql_type(fragment) == "DOUBLE", as_double),
        else_=false(),
    )


def _mysql_scalar(fragment: ColumnElement[Any], op: str, value: Scalar) -> ColumnElement[bool]:
    """JSON text ``fragment`` compared with a scalar, JSON type respected (NULL: false)."""
    if value is None:
        return _mysql_type(fragment) == "NULL" if op == "=" else false()
    if isinstance(value, bool):
        wanted = value if op == "=" else not value
        return and_(_mysql_type(fragment) == "BOOLEAN", fragment == ("true" if wanted else "false"))
    if isinstance(value, str):
        text = func.json_unquote(fragment).collate(_MYSQL_CODE_POINT)
        return and_(
            _mysql_type(fragment) == "STRING",
            COMPARISONS[op](text, literal(value, Text).collate(_MYSQL_CODE_POINT)),
        )
    return _mysql_number(fragment, op, value)


def _mysql_element(fragment: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    """JSON text ``fragment`` contains ``value`` (jsonb containment)."""
    if isinstance(value, dict):
        members = [_mysql_element(_mysql_member(fragment, k), v) for k, v in value.items()]
        return and_(_mysql_type(fragment) == "OBJECT", *members)
    if isinstance(value, list):
        found = []
        for member in value:
            elements = (
                func.json_table(fragment, literal_column("'$[*]' COLUMNS (v JSON PATH '$')"))
                .table_valued("v")
                .alias()
            )
            found.append(
                select(1).select_from(elements).where(_mysql_element(elements.c.v, member)).exists()
            )
        return case((_mysql_type(fragment) == "ARRAY", and_(true(), *found)), else_=false())
    return _mysql_scalar(fragment, "=", value)


def _mysql_contains(column: ColumnElement[Any], value: dict[str, Any]) -> ColumnElement[bool]:
    """The data column contains ``value`` (NULL data never does)."""
    return _mysql_element(column, value)


def _mysql_compare(column: ColumnElement[Any], comparison: Comparison) -> ColumnElement[bool]:
    return _mysql_scalar(_mysql_member(column, comparison.key), comparison.op, comparison.value)
