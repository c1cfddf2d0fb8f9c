"""UTC timestamps as PostgreSQL input text, for the COPY lines and the column texts.

PostgreSQL reads ``2026-12-06T14:14:33.223803+00`` as that instant; the form
is ISO 8601 with the offset in hours, which ``datetime.fromisoformat`` also
reads back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

__all__ = ["timestamp_texts"]

_SECOND = timedelta(seconds=1)
_EMPTY = datetime.max.replace(tzinfo=UTC)


def timestamp_texts(stamps: Sequence[datetime]) -> list[str]:
    """Each timestamp as PostgreSQL text, its date and time of day formatted once per second.

    ``isoformat()`` was a sixth of the cost of a COPY line; the events of a
    batch mostly fall within one second, so only the microseconds change from
    one to the next. A timestamp not in UTC (rows hold UTC) takes ``isoformat()``.
    Rows hold validated timestamps (``check_aware``: at most 9999-12-30), so
    the second after one is always a datetime.
    """
    texts: list[str] = []
    append = texts.append
    # The second whose text is in prefix, and the next; empty until the first row.
    second = next_second = _EMPTY
    prefix = ""
    for when in stamps:
        if when.tzinfo is not UTC:
            append(when.isoformat())
            continue
        if not second <= when < next_second:
            second = when.replace(microsecond=0)
            next_second = second + _SECOND
            prefix = second.isoformat()[:-6]  # without "+00:00"
        append(f"{prefix}.{when.microsecond:06d}+00")
    return texts
