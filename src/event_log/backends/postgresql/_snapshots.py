"""Commit order on PostgreSQL, read from transaction ids, with no lock for writers.

Every row carries the id of the transaction that wrote it (``event_log.xid``,
``pg_current_xact_id()``, filled in by the column's default), and writers
share nothing else: no counter row, so no write waits for another's commit,
and PostgreSQL's group commit works across every process and machine.

A follower's position is a snapshot of the server (``pg_current_snapshot()``:
``xmin``, ``xmax`` and the ids of the transactions then in progress). A
transaction is visible in a snapshot when its id is below ``xmin``, or below
``xmax`` and not in progress. Reading on from snapshot A means taking a new
snapshot B and reading the rows whose transaction is visible in B but was not
in A: every transaction becomes visible in exactly one such step, so every
row is read exactly once, and a step never waits for anything. Rows a
snapshot cannot see (still in progress) are found in a later step.

Why not wait for ``xmin`` (read only ids below the oldest transaction still
running): one session idle in a transaction, in any database of the server,
holds ``xmin`` back and would stall every follower for as long as it stays
open. Reading "visible in B, not in A" instead keeps that cost to the
transaction itself: its own rows come when it commits. The rows a step can
be missing are few to look up: ids at or above A's ``xmax``, or in A's
in-progress list, both ranges of the index on ``(xid, id)``.

Order: steps follow one another in the order transactions became visible to
the follower. Within one step (transactions that became visible between two
of its reads, which no reader of those two snapshots can tell apart), rows
come in transaction id order, then id order (a transaction's rows in the
order it wrote them: a logger's ids increase). A step with more rows than a
page is read in pages bounded by the same snapshot B, keyed by ``(xid, id)``.

Rows stored before the upgrade to this scheme have no xid: they are older
than any snapshot taken after it.

Logical decoding would give exact commit order, but it needs
``wal_level=logical``, a server setting an embedded library cannot ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    func,
    or_,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import UserDefinedType

from ..._commit_order import CommitOrder, FollowPosition, FollowReader, ReadResult, ReadRows
from ..._filters import EventFilter
from ..._queries import EVENT_COLUMNS, filter_clauses
from ..._schema import EVENT_TABLE

if TYPE_CHECKING:
    from .._backend import Backend

__all__ = ["Snapshot", "SnapshotOrder", "SnapshotPosition"]

_c = EVENT_TABLE.c
_xid = _c.xid
_SNAPSHOT = text("SELECT pg_current_snapshot()::text")
_XIP_TYPE = ARRAY(BigInteger())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Which transactions a reader could see: ``pg_current_snapshot()``."""

    xmin: int
    xmax: int
    xip: tuple[int, ...]  # in progress: ids from xmin (inclusive) below xmax

    @classmethod
    def parse(cls, value: str) -> Snapshot:
        """From PostgreSQL's text form ``xmin:xmax:xip,xip,...`` (``ValueError`` if not)."""
        xmin, xmax, xip = value.split(":")
        snapshot = cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x))
        if not 0 < snapshot.xmin <= snapshot.xmax or any(
            not snapshot.xmin <= x < snapshot.xmax for x in snapshot.xip
        ):
            raise ValueError(f"not a snapshot: {value!r}")
        return snapshot

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(map(str, self.xip))}"

    def visible(self, prefix: str) -> ColumnElement[bool]:
        """Rows whose transaction this snapshot sees."""
        return and_(
            _xid < bindparam(f"{prefix}_xmax", self.xmax, BigInteger()),
            or_(
                _xid < bindparam(f"{prefix}_xmin", self.xmin, BigInteger()),
                _xid != bindparam(f"{prefix}_xip", list(self.xip), _XIP_TYPE).all_(),
            ),
        )


@dataclass(frozen=True, slots=True)
class SnapshotPosition(FollowPosition):
    """Everything visible in ``after`` is read; with ``bound``, also the rows up to
    ``key`` (``(xid, id)``) of those visible in ``bound`` and not in ``after``."""

    after: Snapshot
    bound: Snapshot | None = None
    key: tuple[int, str] | None = None

    def to_json(self) -> Any:
        if self.bound is None:
            return [str(self.after)]
        assert self.key is not None
        return [str(self.after), str(self.bound), self.key[0], self.key[1]]


class SnapshotOrder(CommitOrder):
    """PostgreSQL's commit order: see the module."""

    kind = "x"

    async def now(self, read: ReadRows) -> FollowPosition:
        rows = await read(_SNAPSHOT, None)
        return SnapshotPosition(Snapshot.parse(str(rows[0][0])))

    def committed_by(self, position: FollowPosition) -> ColumnElement[bool]:
        assert isinstance(position, SnapshotPosition)
        # Mid-step too: the live reads go on with what `after` does not see.
        return or_(_xid.is_(None), position.after.visible("by"))

    def reader(self, backend: Backend, flt: EventFilter, limit: int) -> FollowReader:
        return _SnapshotReader(backend, flt, limit)

    def position_from_json(self, value: Any) -> FollowPosition:
        if not isinstance(value, list) or len(value) not in (1, 4):
            raise ValueError("not a snapshot position")
        if not all(isinstance(v, str) for v in value[:2]):
            raise ValueError("not a snapshot position")
        if len(value) == 1:
            return SnapshotPosition(Snapshot.parse(value[0]))
        after, bound, xid, event_id = value
        if isinstance(xid, bool) or not isinstance(xid, int) or not isinstance(event_id, str):
            raise ValueError("not a snapshot position")
        return SnapshotPosition(Snapshot.parse(after), Snapshot.parse(bound), (xid, event_id))


class _SnapshotReader(FollowReader):
    """One statement per read: the bound snapshot (a new one unless the step is
    half read, or the logger closes) and the page (see :func:`_page`)."""

    def __init__(self, backend: Backend, flt: EventFilter, limit: int) -> None:
        self._limit = limit
        self._first = _page(backend, flt, limit, keyed=False)
        self._next = _page(backend, flt, limit, keyed=True)

    async def read(
        self, read: ReadRows, after: FollowPosition, *, until: FollowPosition | None
    ) -> ReadResult:
        assert isinstance(after, SnapshotPosition)
        bound = after.bound
        if bound is None and until is not None:
            assert isinstance(until, SnapshotPosition)
            bound = until.after
        params: dict[str, Any] = {
            "bound": None if bound is None else str(bound),
            "after_xip": list(after.after.xip),
            "after_xmax": after.after.xmax,
        }
        if after.key is not None:
            params["key_xid"], params["key_id"] = after.key
        rows = await read(self._first if after.key is None else self._next, params)
        bound = Snapshot.parse(str(rows[0][0]))
        rows = [row[1:] for row in rows if row[1] is not None]
        positions: list[tuple[Sequence[Any], FollowPosition]] = [
            (row[:-1], SnapshotPosition(after.after, bound, (int(row[-1]), str(row[0]))))
            for row in rows
        ]
        if len(rows) < self._limit:
            done = SnapshotPosition(bound)  # the step is complete: bound is the new after
            if positions:
                positions[-1] = (positions[-1][0], done)
            return positions, done
        return positions, positions[-1][1]


class _PgSnapshot(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_snapshot"


class _Xid8(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


def _page(backend: Backend, flt: EventFilter, limit: int, *, keyed: bool) -> Any:
    """The bound snapshot (parameter ``bound``; ``pg_current_snapshot()`` when NULL),
    then the rows visible in it and not in the snapshot the read starts from
    (``after_xmax``, ``after_xip``), after ``(key_xid, key_id)`` when ``keyed``, by
    ``(xid, id)``: at least one row, its first column the bound's text, the rest
    NULL when no row matches.

    Two parts, each a range of the ``(xid, id)`` index: the transactions the
    starting snapshot saw in progress, and those it had not seen begin. (One
    condition with OR between them would leave the planner to walk the index
    from that snapshot's xmin, through every row it already saw.)
    """
    given = bindparam("bound", type_=Text())
    snap = select(
        func.coalesce(
            cast(given, _PgSnapshot()), func.pg_current_snapshot(type_=_PgSnapshot())
        ).label("s")
    ).cte("snap")
    common = [
        *filter_clauses(flt, backend),
        func.pg_visible_in_snapshot(cast(cast(_xid, Text()), _Xid8()), snap.c.s),
    ]
    if keyed:
        common.append(
            tuple_(_xid, _c.id)
            > tuple_(bindparam("key_xid", type_=BigInteger()), bindparam("key_id", type_=Text()))
        )
    columns = (*EVENT_COLUMNS, _xid)
    in_progress = (
        select(*columns)
        .select_from(EVENT_TABLE.join(snap, true()))
        .where(_xid == bindparam("after_xip", type_=_XIP_TYPE).any_(), *common)
        .order_by(_xid, _c.id)
        .limit(limit)
    )
    unseen = (
        select(*columns)
        .select_from(EVENT_TABLE.join(snap, true()))
        .where(_xid >= bindparam("after_xmax", type_=BigInteger()), *common)
        .order_by(_xid, _c.id)
        .limit(limit)
    )
    both = in_progress.union_all(unseen).subquery()
    page = select(*both.c).order_by(both.c.xid, both.c.id).limit(limit).subquery("page")
    return (
        select(cast(snap.c.s, Text()), *page.c)
        .select_from(snap.outerjoin(page, true()))
        .order_by(page.c.xid, page.c.id)
    )
