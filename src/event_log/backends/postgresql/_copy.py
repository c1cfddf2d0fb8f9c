r"""Rows as PostgreSQL ``COPY ... FROM STDIN`` text, so a large batch can stream.

Why text and not the binary format asyncpg's ``copy_records_to_table`` sends:
the server stores ``COPY`` rows in groups, flushing a group to the table and
its indexes when it holds 1,000 rows or 64 kB of input lines. Binary input
has no lines, so only the row count applies, and a batch of 1,000 rows is
stored all at once after its last byte has arrived, while the client waits.
Text input flushes every 64 kB (a few hundred events), so the server stores
the first rows of a batch while the client is still validating the rest.
asyncpg also buffers 512 kB of binary rows before sending any.

The format (PostgreSQL documentation, "COPY", "Text Format"): one line per
row, columns separated by a tab, ``\N`` for NULL, and backslash, newline,
carriage return and tab inside a value written as ``\\``, ``\n``, ``\r``
and ``\t``. Timestamps go as ISO 8601 with their UTC offset, ``data`` as its
JSON text (which ``jsonb`` parses). The server fills in ``xid``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..._models import Row
from ._time import timestamp_texts

__all__ = ["COPY_COLUMNS", "copy_text"]

# What a writer sends: the event's seven columns (the server fills in xid; seq stays NULL).
COPY_COLUMNS = ["id", "event_type", "source", "task_id", "agent_id", "data", "timestamp"]

# A line holds the row's seven values in its order (COPY_COLUMNS).
_TABS_PER_LINE = 6
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_NULL = "\\N"


def _field(value: str | None) -> str:
    return _NULL if value is None else value.translate(_ESCAPES)


def _escaped_lines(rows: Sequence[Row], timestamps: list[str]) -> str:
    return "".join(
        f"{_field(r[0])}\t{_field(r[1])}\t{_field(r[2])}\t{_field(r[3])}\t{_field(r[4])}\t"
        f"{_field(r[5])}\t{when}\n"
        for r, when in zip(rows, timestamps, strict=True)
    )


def copy_text(rows: Sequence[Row]) -> bytes:
    """``rows`` as COPY text lines, UTF-8 encoded.

    Values almost never hold a character that needs escaping, so the lines are
    built plainly first, then checked as a whole: one newline per row, six
    tabs per row, no carriage return, and no backslash but the one of each
    NULL marker means no value held one. Otherwise the lines are built again
    with every value escaped.
    """
    timestamps = timestamp_texts([r[6] for r in rows])
    text = "".join(
        f"{r[0]}\t{r[1]}\t{r[2]}\t{_NULL if r[3] is None else r[3]}\t"
        f"{_NULL if r[4] is None else r[4]}\t{_NULL if r[5] is None else r[5]}\t"
        f"{when}\n"
        for r, when in zip(rows, timestamps, strict=True)
    )
    nulls = sum([r[i] for r in rows].count(None) for i in (3, 4, 5))
    if (
        text.count("\\") != nulls
        or "\r" in text
        or text.count("\n") != len(rows)
        or text.count("\t") != _TABS_PER_LINE * len(rows)
    ):
        text = _escaped_lines(rows, timestamps)
    return text.encode()
