"""Every read and delete statement, built in one place, plus the keyset cursors.

Listings order by ``(timestamp, id)`` and page with row-value comparisons on
that pair, so every page is an index range scan whatever its depth, and events
sharing a timestamp are never skipped or repeated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from sqlalchemy import (
    ColumnElement,
    Select,
    false,
    func,
    not_,
    or_,
    select,
    tuple_,
)

from ._errors import InvalidCursorError
from ._filters import EventFilter, TypeSpec
from ._models import Event, HistogramBucket, storable_text, trusted_event
from ._schema import EVENT_TABLE

if TYPE_CHECKING:
    from .backends import Backend

__all__ = [
    "EVENT_COLUMNS",
    "HISTOGRAM_GROUPS",
    "MAX_BUCKETS",
    "MAX_PAGE_SIZE",
    "AnySelect",
    "BucketGrid",
    "CursorCodec",
    "HistogramGroup",
    "Position",
    "check_limit",
    "check_minutes",
    "count_statement",
    "event_by_id_statement",
    "filter_clauses",
    "histogram_statements",
    "list_statement",
    "minutes_ago",
    "row_to_event",
    "sort_summary",
    "storable_text",
    "summary_statement",
    "type_clause",
]

MAX_PAGE_SIZE = 1000
_table = EVENT_TABLE
_c = _table.c
EVENT_COLUMNS = (_c.id, _c.event_type, _c.source, _c.task_id, _c.agent_id, _c.data, _c.timestamp)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Position = tuple[datetime, str]
AnySelect = Select[*tuple[Any, ...]]


def row_to_event(row: Sequence[Any]) -> Event:
    """An :class:`Event` from a row of ``EVENT_COLUMNS`` (stored rows are not re-validated)."""
    return trusted_event(
        {
            "id": row[0],
            "event_type": row[1],
            "source": row[2],
            "task_id": row[3],
            "agent_id": row[4],
            "data": row[5],
            "timestamp": row[6],
        }
    )


def check_limit(limit: object, *, maximum: int | None = None) -> int:
    """A page size: an int of at least 1 (and at most ``maximum``), else ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an int, not {type(limit).__name__}")
    if limit < 1 or (maximum is not None and limit > maximum):
        bound = f"1..{maximum}" if maximum is not None else ">= 1"
        raise ValueError(f"limit must be {bound}, got {limit}")
    return limit


def check_minutes(name: str, value: object) -> float:
    """A non-negative, finite number of minutes or days."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        bits = int(value).bit_length()
        raise ValueError(f"{name} must be a finite number >= 0, not a {bits}-bit int") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def minutes_ago(minutes: float) -> datetime:
    """Now minus ``minutes``, clamped to the earliest datetime for huge windows."""
    try:
        return datetime.now(UTC) - timedelta(minutes=minutes)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def type_clause(
    spec: TypeSpec, column: ColumnElement[str], backend: Backend
) -> ColumnElement[bool]:
    """Match ``spec``'s exact types and prefixes on ``column``."""
    options: list[ColumnElement[bool]] = []
    if spec.exact:
        options.append(column == spec.exact[0] if len(spec.exact) == 1 else column.in_(spec.exact))
    options.extend(backend.prefix_clause(column, prefix) for prefix in spec.prefixes)
    return or_(*options) if len(options) > 1 else options[0] if options else false()


def filter_clauses(
    flt: EventFilter, backend: Backend, *, ordered: bool = False
) -> list[ColumnElement[bool]]:
    """WHERE clauses for ``flt`` in ``backend``'s SQL.

    ``ordered``: the caller sorts by ``(timestamp, id)`` (see ``Backend.type_column``).
    """
    parts = flt.compiled()
    where: list[ColumnElement[bool]] = []
    if parts.types is not None:
        column = backend.type_column(walk_time_index=ordered and not parts.types.single)
        where.append(type_clause(parts.types, column, backend))
    if parts.exclude_types is not None:
        # A negative condition cannot narrow an index range: it filters whatever
        # index the rest of the query walks.
        column = backend.type_column(walk_time_index=ordered)
        where.append(not_(type_clause(parts.exclude_types, column, backend)))
    if flt.source is not None:
        where.append(_c.source == flt.source)
    if parts.exclude_sources:
        where.append(_c.source.not_in(parts.exclude_sources))
    if flt.task_id is not None:
        where.append(_c.task_id == flt.task_id)
    if flt.agent_id is not None:
        where.append(_c.agent_id == flt.agent_id)
    if flt.since is not None:
        where.append(_c.timestamp >= flt.since)
    if flt.until is not None:
        where.append(_c.timestamp < flt.until)
    if parts.data is not None:
        where.extend(backend.data_clauses(parts.data, _c.data))
    return where


def _ordered(stmt: AnySelect, newest_first: bool) -> AnySelect:
    if newest_first:
        return stmt.order_by(_c.timestamp.desc(), _c.id.desc())
    return stmt.order_by(_c.timestamp.asc(), _c.id.asc())


def list_statement(
    flt: EventFilter,
    backend: Backend,
    *,
    newest_first: bool,
    after: Position | None = None,
    limit: int | None = None,
) -> AnySelect:
    """Events matching ``flt`` in ``(timestamp, id)`` order, strictly after ``after``."""
    stmt = select(*EVENT_COLUMNS).where(*filter_clauses(flt, backend, ordered=True))
    if after is not None:
        key = tuple_(_c.timestamp, _c.id)
        bound = tuple_(*after, types=(_c.timestamp.type, _c.id.type))
        stmt = stmt.where(key < bound if newest_first else key > bound)
    stmt = _ordered(stmt, newest_first)
    return stmt if limit is None else stmt.limit(limit)


def count_statement(flt: EventFilter, backend: Backend) -> AnySelect:
    return select(func.count()).select_from(_table).where(*filter_clauses(flt, backend))


def event_by_id_statement(event_id: str) -> AnySelect:
    return select(*EVENT_COLUMNS).where(_c.id == event_id)


def summary_statement(since: datetime, backend: Backend) -> AnySelect:
    """Counts per type since ``since``, read from the time window (usually a small part
    of the table) rather than from every row of each type."""
    key = backend.type_column(walk_time_index=True)
    return select(key, func.count()).where(_c.timestamp >= since).group_by(key)


MAX_BUCKETS = 1000
HistogramGroup = Literal["event_type", "source", "agent_id"]
HISTOGRAM_GROUPS: tuple[HistogramGroup, ...] = get_args(HistogramGroup)


@dataclass(frozen=True, slots=True)
class BucketGrid:
    """Histogram buckets: ``count`` buckets of ``every``, the first starting at ``start``.

    Buckets are aligned to the Unix epoch (a fixed origin), so the same
    ``every`` always gives the same boundaries, whatever ``since`` is.
    """

    start: datetime
    every: timedelta
    count: int
    end: datetime

    @classmethod
    def covering(cls, since: datetime, until: datetime, every: timedelta) -> BucketGrid:
        if not isinstance(every, timedelta) or every <= timedelta(0):
            raise ValueError(f"every must be a positive timedelta, got {every!r}")
        if until <= since:
            raise ValueError("until must be after since")
        step = every // timedelta(microseconds=1)
        if step < 1:
            raise ValueError("every must be at least one microsecond")
        first = ((since - _EPOCH) // timedelta(microseconds=1)) // step * step
        last = -(-((until - _EPOCH) // timedelta(microseconds=1)) // step) * step
        count = (last - first) // step
        if count > MAX_BUCKETS:
            raise ValueError(f"{count} buckets of {every}; at most {MAX_BUCKETS}")
        try:
            start = _EPOCH + timedelta(microseconds=first)
            end = start + count * every
        except OverflowError:
            raise ValueError(
                f"buckets of {every} aligned to the epoch reach outside the datetime range "
                f"from since={since} to until={until}"
            ) from None
        return cls(start, every, count, end)

    def starts(self) -> list[datetime]:
        return [self.start + i * self.every for i in range(self.count)]

    def buckets(self, rows: Iterable[Sequence[Any]], *, grouped: bool) -> list[HistogramBucket]:
        """Every bucket of the grid from (bucket index, [group value,] count) rows;
        absent buckets count zero, a group's None counts under ""."""
        counts: list[dict[str, int]] = [{} for _ in range(self.count)]
        for row in rows:
            index, count = int(row[0]), int(row[-1])
            if count and 0 <= index < self.count:
                key = "" if not grouped or row[1] is None else str(row[1])
                counts[index][key] = counts[index].get(key, 0) + count
        return [
            HistogramBucket.model_construct(  # values of the right types already
                start=start,
                end=start + self.every,
                total=sum(bucket_counts.values()),
                counts=bucket_counts if grouped else {},
            )
            for start, bucket_counts in zip(self.starts(), counts, strict=True)
        ]


def histogram_statements(
    flt: EventFilter,
    backend: Backend,
    grid: BucketGrid,
    by: HistogramGroup | None,
    *,
    pooled: bool,
) -> list[AnySelect]:
    """(bucket index, [group value,] count) rows, counted in SQL; empty buckets may be absent.

    ``flt`` bounds what is counted (its ``since`` may fall inside the first
    bucket). ``pooled``: the statements may run at once, each on its own connection.
    """
    return backend.histogram_statements(flt, grid, by, pooled=pooled)


class CursorCodec:
    """Opaque, tamper-evident keyset cursors: an HMAC-signed ``(direction, timestamp, id)``.

    The key is private to the logger (random unless given), so a cursor only
    works with the logger (or loggers sharing the key) that issued it.
    """

    _MAC_SIZE = 16
    _HEAD = struct.Struct(">cq")  # direction byte, microseconds since the epoch

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[: self._MAC_SIZE]

    def encode(self, position: Position, *, newest_first: bool) -> str:
        when, event_id = position
        micros = (when - _EPOCH) // timedelta(microseconds=1)
        payload = self._HEAD.pack(b"n" if newest_first else b"o", micros) + event_id.encode()
        return base64.urlsafe_b64encode(self._mac(payload) + payload).rstrip(b"=").decode()

    def decode(self, cursor: object, *, newest_first: bool) -> Position:
        """The position in ``cursor``, or :class:`InvalidCursorError`."""
        if not isinstance(cursor, str) or not cursor:
            raise InvalidCursorError("cursor must be a non-empty string issued by this logger")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursorError("cursor is malformed") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != cursor:
            # Only the exact text this codec wrote: no padding, no stray low bits.
            raise InvalidCursorError("cursor is malformed")
        mac, payload = raw[: self._MAC_SIZE], raw[self._MAC_SIZE :]
        if len(payload) < self._HEAD.size or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidCursorError("cursor was not issued by this logger or was altered")
        direction, micros = self._HEAD.unpack_from(payload)
        if direction != (b"n" if newest_first else b"o"):
            raise InvalidCursorError(
                f"cursor was issued for newest_first={not newest_first}; "
                f"it cannot page with newest_first={newest_first}"
            )
        return _EPOCH + timedelta(microseconds=micros), payload[self._HEAD.size :].decode()


def sort_summary(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Event type to count, largest count first (ties by type name, for stable output)."""
    pairs = sorted(((str(r[0]), int(r[1])) for r in rows), key=lambda p: (-p[1], p[0]))
    return dict(pairs)
