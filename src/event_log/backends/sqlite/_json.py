"""Data filters on SQLite: jsonb's rules built from ``json_each``.

SQLite has no containment operator. Keys are matched on ``json_each.key``
instead of being written into JSON paths: SQLite's path syntax cannot quote a
key holding a double quote, and comparing the key as a bound value works for
any text. See ``_data_filters`` for the rules every backend follows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, false, func, literal, select, true
from sqlalchemy.sql.selectable import TableValuedAlias

from ..._data_filters import COMPARISONS, Comparison, DataFilter, Scalar

__all__ = ["data_clauses"]

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


def data_clauses(data: DataFilter, column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    """WHERE clauses for ``data``'s containment and comparisons."""
    where: list[ColumnElement[bool]] = []
    if data.contains is not None:
        where.append(_sqlite_contains(column, data.contains))
    where.extend(_sqlite_compare(column, comparison) for comparison in data.where)
    return where
