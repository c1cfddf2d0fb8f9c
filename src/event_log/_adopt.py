"""Row conversion for adopting the original system's ``event_log`` table.

The original system (ADR 017) stored every column as ``TEXT``: timestamps as
``datetime.isoformat()`` strings, with or without a fraction, naive or with an
offset, and data as ``json.dumps(...)`` text. Revision ``0001`` copies those
rows into the new table through :func:`convert_row`, which turns each into the
new storage form or raises :class:`AdoptionError` naming the row, so no row is
ever dropped silently.

The functions are pure and small so they can be tested without a database;
the revision owns the SQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

from event_log._errors import StorageError

__all__ = [
    "AdoptedRow",
    "AdoptionError",
    "convert_row",
    "normalize_data",
    "normalize_timestamp",
]

# The widths of the new table's VARCHAR columns (see _schema.EventRecord).
# Checked here so an over-long value fails with the row's id on every backend,
# not as an anonymous driver error on PostgreSQL and silently on SQLite.
_MAX_LENGTHS = {"id": 36, "event_type": 64, "source": 255, "task_id": 255, "agent_id": 255}


class AdoptionError(StorageError):
    """A row of the original table cannot be carried over; the upgrade is rolled back."""


class AdoptedRow(NamedTuple):
    """One row in the new table's storage form (``timestamp`` aware UTC, ``data`` JSON text)."""

    id: str
    event_type: str
    source: str
    task_id: str | None
    agent_id: str | None
    data: str | None
    timestamp: datetime


def normalize_timestamp(value: str | datetime) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; naive values are taken as UTC.

    Accepts what ``datetime.isoformat()`` writes (with or without a fraction or
    an offset) and ``Z``. Raises ``ValueError`` for anything else.
    """
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{value!r} is out of range in UTC") from exc


def normalize_data(value: str | bytes | dict[str, Any] | list[Any] | None) -> str | None:
    """JSON text as compact, strict JSON text of an object; ``None`` and ``null`` become ``None``.

    ``Event.data`` is an object, so any other JSON value (a list, a number, a
    string) is kept as ``{"value": ...}`` rather than lost or left unreadable.
    Raises ``ValueError`` when the text is not JSON.
    """
    if value is None:
        return None
    # A jsonb column arrives already decoded by the driver. In text,
    # json.dumps' default allow_nan=True let the original system store NaN and
    # Infinity, which are not JSON (PostgreSQL's jsonb rejects them): keep them
    # as the strings "NaN", "Infinity", "-Infinity" rather than failing the
    # whole upgrade over them.
    decoded = json.loads(value, parse_constant=str) if isinstance(value, str | bytes) else value
    if decoded is None:
        return None
    if not isinstance(decoded, dict):
        decoded = {"value": decoded}
    return json.dumps(decoded, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _checked(row_id: object, column: str, value: object) -> str:
    text = str(value)
    limit = _MAX_LENGTHS[column]
    if len(text) > limit:
        raise AdoptionError(
            f"cannot adopt event_log row id={row_id!r}: {column} is {len(text)} characters "
            f"long, the new table allows {limit}"
        )
    return text


def _required(row_id: object, column: str, value: object) -> str:
    if value is None:
        raise AdoptionError(f"cannot adopt event_log row id={row_id!r}: {column} is NULL")
    return _checked(row_id, column, value)


def _optional(row_id: object, column: str, value: object) -> str | None:
    return None if value is None else _checked(row_id, column, value)


def convert_row(
    row_id: Any,
    event_type: Any,
    source: Any,
    task_id: Any,
    agent_id: Any,
    data: Any,
    timestamp: Any,
) -> AdoptedRow:
    """One original row in the new storage form, or :class:`AdoptionError` naming the row."""
    new_id = _required(row_id, "id", row_id)
    if timestamp is None:
        raise AdoptionError(f"cannot adopt event_log row id={row_id!r}: timestamp is NULL")
    try:
        when = normalize_timestamp(timestamp if isinstance(timestamp, datetime) else str(timestamp))
    except ValueError as exc:
        raise AdoptionError(
            f"cannot adopt event_log row id={row_id!r}: timestamp {timestamp!r} is not an "
            f"ISO 8601 date-time ({exc})"
        ) from exc
    try:
        text = normalize_data(data)
    except (ValueError, TypeError) as exc:
        raise AdoptionError(
            f"cannot adopt event_log row id={row_id!r}: data is not JSON ({exc}): {data!r:.200}"
        ) from exc
    return AdoptedRow(
        id=new_id,
        event_type=_required(row_id, "event_type", event_type),
        source=_required(row_id, "source", source),
        task_id=_optional(row_id, "task_id", task_id),
        agent_id=_optional(row_id, "agent_id", agent_id),
        data=text,
        timestamp=when,
    )
