"""Where a follower is in the log's commit order, how it reads on, and its cursors.

``follow()`` must yield every event exactly once, in the order transactions
became visible, although a transaction that took its timestamps earlier can
commit later. Each kind of database keeps that order its own way, behind
:class:`CommitOrder`:

- :class:`SequenceOrder` (SQLite, MariaDB): every write transaction numbers its
  rows from one counter row whose lock it holds until it commits
  (``_schema.EventSequence``), so ``seq`` order is commit order and a position
  is the last ``seq`` read.
- PostgreSQL's transaction-id order (``backends.postgresql._snapshots``): no
  counter, so writers never wait for each other; a position is a snapshot of
  the server.

A follower's position has a text form, its cursor (:func:`encode_cursor`): a
position in the database's commit order, the same for every logger on that
database, so a process that restarts can resume where an earlier one stopped.
It is not signed (unlike ``list_events`` cursors): it names no filter, and
any position is one a reader could ask for anyway. A checksum catches text
that was cut short or altered by accident.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ColumnElement, Executable, bindparam, or_, select

from ._errors import InvalidCursorError
from ._filters import EventFilter
from ._queries import EVENT_COLUMNS, AnySelect, Position, filter_clauses
from ._schema import EVENT_TABLE, SEQUENCE_TABLE

if TYPE_CHECKING:
    from .backends import Backend

__all__ = [
    "CURSOR_PREFIX",
    "CommitOrder",
    "FollowPosition",
    "FollowReader",
    "ReadResult",
    "ReadRows",
    "SeqPosition",
    "SequenceOrder",
    "StoredPosition",
    "decode_cursor",
    "encode_cursor",
]

# Runs a statement with its parameters and returns every row (a follower's read).
ReadRows = Callable[[Executable, Mapping[str, Any] | None], Awaitable[list[Sequence[Any]]]]
# Read rows, each with the position just after it, and where to read on from.
ReadResult = tuple[list[tuple[Sequence[Any], "FollowPosition"]], "FollowPosition"]
_c = EVENT_TABLE.c
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FollowPosition(ABC):
    """A place in one kind of database's commit order: what is already read."""

    @abstractmethod
    def to_json(self) -> Any:
        """The position as JSON values (the body of its cursor)."""


class FollowReader(ABC):
    """One follower's reads on from a position: its statements are built once (its
    filter does not change) and run with each read's positions as parameters."""

    @abstractmethod
    async def read(
        self, read: ReadRows, after: FollowPosition, *, until: FollowPosition | None
    ) -> ReadResult:
        """Up to a page of matching rows committed after ``after`` (and by ``until``),
        in commit order, each with the position just after it; and where to read on
        from. The rows begin with the event's columns (see ``row_to_event``)."""


class CommitOrder(ABC):
    """How followers of one kind of database read its rows in commit order."""

    kind: str  # the cursor's tag for this order's positions

    @abstractmethod
    async def now(self, read: ReadRows) -> FollowPosition:
        """A position after everything committed so far."""

    @abstractmethod
    def committed_by(self, position: FollowPosition) -> ColumnElement[bool]:
        """Rows committed by ``position`` (rows that other tools wrote unnumbered count)."""

    @abstractmethod
    def reader(self, backend: Backend, flt: EventFilter, limit: int) -> FollowReader:
        """The reads of a follower of ``flt``, ``limit`` rows at most each."""

    @abstractmethod
    def position_from_json(self, value: Any) -> FollowPosition:
        """The position a cursor's body holds (``ValueError`` when it holds none)."""


@dataclass(frozen=True, slots=True)
class SeqPosition(FollowPosition):
    """The last sequence number read."""

    seq: int

    def to_json(self) -> Any:
        return self.seq


class SequenceOrder(CommitOrder):
    """Commit order as the counter row numbers it (``seq``)."""

    kind = "s"

    async def now(self, read: ReadRows) -> FollowPosition:
        stmt = select(SEQUENCE_TABLE.c.last_seq).where(SEQUENCE_TABLE.c.id == 1)
        rows = await read(stmt, None)
        return SeqPosition(int(rows[0][0]) if rows else 0)

    def committed_by(self, position: FollowPosition) -> ColumnElement[bool]:
        assert isinstance(position, SeqPosition)
        return or_(_c.seq <= position.seq, _c.seq.is_(None))

    def reader(self, backend: Backend, flt: EventFilter, limit: int) -> FollowReader:
        return _SeqReader(backend, flt, limit)

    def position_from_json(self, value: Any) -> FollowPosition:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("not a sequence number")
        return SeqPosition(value)


class _SeqReader(FollowReader):
    """``seq`` above the position (and up to the end), in ``seq`` order."""

    def __init__(self, backend: Backend, flt: EventFilter, limit: int) -> None:
        after = _c.seq > bindparam("after_seq", type_=BigInteger())
        stmt: AnySelect = select(*EVENT_COLUMNS, _c.seq).where(*filter_clauses(flt, backend), after)
        self._open = stmt.order_by(_c.seq).limit(limit)
        until = _c.seq <= bindparam("until_seq", type_=BigInteger())
        self._bounded = stmt.where(until).order_by(_c.seq).limit(limit)

    async def read(
        self, read: ReadRows, after: FollowPosition, *, until: FollowPosition | None
    ) -> ReadResult:
        assert isinstance(after, SeqPosition)
        if until is None:
            rows = await read(self._open, {"after_seq": after.seq})
        else:
            assert isinstance(until, SeqPosition)
            rows = await read(self._bounded, {"after_seq": after.seq, "until_seq": until.seq})
        read_rows: list[tuple[Sequence[Any], FollowPosition]] = [
            (row, SeqPosition(int(row[-1]))) for row in rows
        ]
        return read_rows, read_rows[-1][1] if read_rows else after


@dataclass(frozen=True, slots=True)
class StoredPosition(FollowPosition):
    """Still reading the events stored when following began: after ``listed`` in
    ``(timestamp, id)`` order, up to ``live``, where the live part starts."""

    listed: Position
    live: FollowPosition

    def to_json(self) -> Any:
        when, event_id = self.listed
        return [(when - _EPOCH) // timedelta(microseconds=1), event_id, self.live.to_json()]


_CHECK = b"event-log follow cursor"
CURSOR_PREFIX = "f."


def _checksum(body: bytes) -> str:
    digest = hashlib.sha256(_CHECK + body).digest()[:6]
    return base64.urlsafe_b64encode(digest).decode()


def encode_cursor(order: CommitOrder, position: FollowPosition) -> str:
    """``position`` as a follow cursor: ``f.`` + base64url(JSON) + ``.`` + checksum."""
    stored = isinstance(position, StoredPosition)
    body = json.dumps(
        [order.kind + ("+" if stored else ""), position.to_json()], separators=(",", ":")
    ).encode()
    text = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    return f"{CURSOR_PREFIX}{text}.{_checksum(body)}"


def decode_cursor(order: CommitOrder, cursor: str) -> FollowPosition | None:
    """The position in a follow cursor; None when ``cursor`` is not one at all (it may
    be an event id); :class:`InvalidCursorError` when it is one that cannot be used
    here (altered, or issued by a follower of another kind of database)."""
    if not cursor.startswith(CURSOR_PREFIX) or cursor.count(".") != 2:
        return None
    text, check = cursor[len(CURSOR_PREFIX) :].split(".")
    try:
        body = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if _checksum(body) != check:
        return None
    try:
        kind, value = json.loads(body)
        if not isinstance(kind, str):
            raise ValueError("no kind")
        stored = kind.endswith("+")
        if kind.rstrip("+") != order.kind:
            raise InvalidCursorError(
                "cursor was issued by a follower of another kind of database; "
                "follow from an event id or a list_events cursor instead"
            )
        if not stored:
            return order.position_from_json(value)
        micros, event_id, live = value
        if isinstance(micros, bool) or not isinstance(micros, int) or not isinstance(event_id, str):
            raise ValueError("not a stored position")
        when = _EPOCH + timedelta(microseconds=micros)
        return StoredPosition((when, event_id), order.position_from_json(live))
    except InvalidCursorError:
        raise
    except RecursionError:  # JSON nested past what the parser can take
        raise InvalidCursorError("follow cursor is malformed (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursorError(f"follow cursor is malformed ({exc})") from None
