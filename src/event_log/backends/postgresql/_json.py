"""Data filters on PostgreSQL: jsonb's own operators (``@>`` can use the GIN index)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, Text, and_, cast, func, literal
from sqlalchemy.dialects.postgresql import JSONB

from ..._data_filters import COMPARISONS, Comparison, DataFilter

__all__ = ["data_clauses"]

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


def data_clauses(data: DataFilter, column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    """WHERE clauses for ``data``'s containment and comparisons."""
    where: list[ColumnElement[bool]] = []
    if data.contains_json is not None:
        where.append(column.op("@>", return_type=Boolean)(_jsonb(data.contains_json)))
    where.extend(_postgres_compare(column, comparison) for comparison in data.where)
    return where
