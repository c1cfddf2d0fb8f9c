"""Reading the original system's values: its timestamps and its data text.

The original system stored every column as ``TEXT``: timestamps as
``datetime.isoformat()`` strings, with or without a fraction, naive or with an
offset, and data as ``json.dumps(...)`` text. Importing one of its databases
(``LegacyDatabase``) turns them into the logger's forms here. (Revision
``0001``, which adopts such a table in place, keeps a frozen copy of its own.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["normalize_data", "normalize_timestamp"]


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
