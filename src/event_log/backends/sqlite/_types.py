"""How SQLite stores timestamps: fixed-width UTC text, so text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, String
from sqlalchemy.types import TypeDecorator

__all__ = ["TIMESTAMP_TEXT_WIDTH", "TextTimestamp", "format_utc"]

# "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"
TIMESTAMP_TEXT_WIDTH = 32


def format_utc(value: datetime) -> str:
    """The SQLite storage form of an aware datetime: fixed width, UTC, microseconds."""
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class TextTimestamp(TypeDecorator[datetime]):
    """Aware datetimes as ``format_utc`` text; index range scans work on the text."""

    impl = String(TIMESTAMP_TEXT_WIDTH)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        return None if value is None else format_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(parsed, datetime)
        if parsed.tzinfo is None:  # written by another tool without an offset: UTC
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
