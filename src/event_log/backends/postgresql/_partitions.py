"""Optional time partitioning of ``event_log`` on PostgreSQL.

A partitioned ``event_log`` is ``PARTITION BY RANGE ("timestamp")`` with one
partition per UTC day (``event_log_p20261125``) or month (``event_log_p202611``)
and a DEFAULT partition (``event_log_default``) that takes every row no range
partition covers, so an insert never fails for want of a partition. The
granularity is recorded in the comment of the DEFAULT partition.

PostgreSQL requires a partitioned table's primary key and unique indexes to
include the partition key, so the primary key becomes ``(id, timestamp)``.
Nothing is lost by that: ids are UUIDv7 values the library makes.

Everything here is synchronous SQL on a :class:`~sqlalchemy.engine.Connection`
(Alembic's env.py runs it inside the upgrade's transaction; the logger through
``run_sync``). Each function leaves committing to its caller.

- :func:`set_partitioning` converts a plain table to a partitioned one (rows
  copied into their partitions in one transaction) or back (``"none"``).
- :func:`ensure_partitions` creates the current period's partition and ``ahead``
  more; rows of those periods already in the DEFAULT partition are moved into
  the new partition before it is attached, which PostgreSQL requires.
- :func:`detach_expired` and :func:`drop_detached` let ``prune_events`` drop
  whole partitions instead of deleting their rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast, get_args

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..._schema import indexes_on

__all__ = [
    "DEFAULT_AHEAD",
    "DEFAULT_PARTITION",
    "PARTITION_CHOICES",
    "Partition",
    "PartitionBy",
    "PartitionLayout",
    "check_partition_by",
    "detach_expired",
    "drop_detached",
    "ensure_partitions",
    "list_partitions",
    "partition_name",
    "partitioning",
    "period_start",
    "require_postgresql",
    "set_partitioning",
]

PartitionBy = Literal["day", "month"]
# A table's layout: partitioned by day or month, or plain ("none").
PartitionLayout = Literal["day", "month", "none"]
PARTITION_CHOICES: tuple[PartitionLayout, ...] = get_args(PartitionLayout)
# Periods created ahead of the current one when nothing else is asked.
DEFAULT_AHEAD: dict[PartitionBy, int] = {"day": 7, "month": 2}
DEFAULT_PARTITION = "event_log_default"
TABLE = "event_log"
# Detached partitions are renamed to this prefix until they are dropped, so a
# prune interrupted between the two steps is finished by the next one.
EXPIRED_PREFIX = "event_log_expired_"
_COMMENT = "event-log partitions by {}"
_COMMENT_PATTERN = re.compile(r"event-log partitions by (day|month)")
_NAME_PATTERN = re.compile(r"event_log_p(\d{4})(\d{2})(\d{2})?")
# Its own advisory lock (the upgrade's is another): partition maintenance of
# several loggers and processes takes turns instead of racing to CREATE TABLE.
_PG_PARTITION_LOCK_KEY = 0x6576_5F70_6172_7473  # "ev_parts"


def check_partition_by(value: object) -> PartitionLayout:
    """``value`` if it is "day", "month" or "none"; else ``ValueError``."""
    if not isinstance(value, str) or value not in PARTITION_CHOICES:
        raise ValueError(f"partition must be one of {PARTITION_CHOICES}, not {value!r}")
    return value


def require_postgresql(dialect_name: str) -> None:
    """``ValueError`` unless the database can be partitioned (PostgreSQL)."""
    if dialect_name != "postgresql":
        raise ValueError(
            f"time partitioning needs PostgreSQL; this database is {dialect_name} "
            "(prune_events deletes in batches there)"
        )


# -- periods and names ----------------------------------------------------------------------


def period_start(moment: datetime, by: PartitionBy) -> datetime:
    """The start (UTC) of the day or month holding ``moment``."""
    moment = moment.astimezone(UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if by == "day" else day.replace(day=1)


def next_period(start: datetime, by: PartitionBy) -> datetime | None:
    """The start of the period after ``start``; None past year 9999."""
    try:
        if by == "day":
            return start + timedelta(days=1)
        if start.month == 12:
            return start.replace(year=start.year + 1, month=1)
        return start.replace(month=start.month + 1)
    except (OverflowError, ValueError):
        return None


def partition_name(start: datetime, by: PartitionBy) -> str:
    """``event_log_p20261125`` (day) or ``event_log_p202611`` (month)."""
    name = f"event_log_p{start.year:04d}{start.month:02d}"
    return name + f"{start.day:02d}" if by == "day" else name


def _parse_name(name: str) -> tuple[datetime, PartitionBy] | None:
    match = _NAME_PATTERN.fullmatch(name)
    if match is None:
        return None
    year, month, day = match.groups()
    try:
        start = datetime(int(year), int(month), int(day or 1), tzinfo=UTC)
    except ValueError:
        return None
    return start, "day" if day else "month"


def _bound(moment: datetime) -> str:
    """A timestamptz literal with an explicit offset: the same instant whatever the
    session's TimeZone (and four-digit years, which strftime's %Y does not give)."""
    m = moment.astimezone(UTC)
    return f"'{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d}:{m.second:02d}+00'"


# -- what is there --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partition:
    """One range partition of ``event_log``: ``[start, end)``, UTC."""

    name: str
    start: datetime
    end: datetime | None


def _relkind(connection: Connection, name: str) -> str | None:
    kind = connection.execute(
        text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:name)"), {"name": name}
    ).scalar()
    return None if kind is None else str(kind)


def partitioning(connection: Connection) -> PartitionBy | None:
    """The partitioning, "day" or "month", if event-log partitioned ``event_log``; else None.

    None on SQLite, for a plain table, and where there is no table at all.
    """
    if connection.dialect.name != "postgresql":
        return None
    if _relkind(connection, TABLE) != "p":
        return None
    comment = connection.execute(
        text("SELECT obj_description(to_regclass(:name), 'pg_class')"),
        {"name": DEFAULT_PARTITION},
    ).scalar()
    match = _COMMENT_PATTERN.fullmatch(str(comment or ""))
    if match is not None:
        return cast(PartitionBy, match.group(1))
    # Comment lost (e.g. a dump restored without comments): the names tell.
    kinds = {parsed[1] for p in _children(connection) if (parsed := _parse_name(p)) is not None}
    return "month" if kinds == {"month"} else "day"


def _children(connection: Connection) -> list[str]:
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:table) ORDER BY c.relname"
        ),
        {"table": TABLE},
    )
    return [str(name) for (name,) in rows]


def list_partitions(connection: Connection) -> list[Partition]:
    """The range partitions event-log named, oldest first (the DEFAULT one is not listed)."""
    by = partitioning(connection)
    if by is None:
        return []
    found = []
    for name in _children(connection):
        parsed = _parse_name(name)
        if parsed is not None and parsed[1] == by:
            found.append(Partition(name, parsed[0], next_period(parsed[0], by)))
    return sorted(found, key=lambda p: p.start)


def _lock(connection: Connection, lock_timeout_ms: int | None = None) -> None:
    """Take the maintenance lock (waiting as long as it takes), then limit how long
    this transaction's table locks may wait, when ``lock_timeout_ms`` is given."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_PARTITION_LOCK_KEY})
    if lock_timeout_ms is not None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")


# -- creating partitions --------------------------------------------------------------------


def _range(start: datetime, end: datetime | None) -> str:
    upper = "MAXVALUE" if end is None else _bound(end)
    return f"FROM ({_bound(start)}) TO ({upper})"


def ensure_partitions(
    connection: Connection,
    *,
    ahead: int | None = None,
    now: datetime | None = None,
    lock_timeout_ms: int | None = None,
) -> list[str]:
    """Create the partitions of the current period and ``ahead`` more; return the new names.

    A no-op (``[]``) unless ``event_log`` is partitioned. Rows of a new
    partition's period already in the DEFAULT partition are moved into it
    before it is attached. Concurrent callers take turns on an advisory lock,
    so two loggers never race to create the same partition. With
    ``lock_timeout_ms``, a table lock not granted in time raises (PostgreSQL's
    lock_not_available) instead of queueing other sessions behind it.
    """
    by = partitioning(connection)
    if by is None:
        return []
    if ahead is None:
        ahead = DEFAULT_AHEAD[by]
    if ahead < 0:
        raise ValueError("ahead must be >= 0")
    _lock(connection, lock_timeout_ms)
    start: datetime | None = period_start(now or datetime.now(UTC), by)
    created = []
    for _ in range(ahead + 1):
        if start is None:
            break
        end = next_period(start, by)
        name = partition_name(start, by)
        if _relkind(connection, name) is None:
            _attach_new(connection, name, start, end)
            created.append(name)
        start = end
    return created


def _attach_new(connection: Connection, name: str, start: datetime, end: datetime | None) -> None:
    """Create partition ``name`` for ``[start, end)``, moving its rows out of the DEFAULT one.

    PostgreSQL refuses to add a partition while the DEFAULT partition holds
    rows of its range. So the table is made standalone, those rows move into
    it (one statement), and then it is attached; ATTACH takes a lighter lock on
    ``event_log`` than ``CREATE TABLE ... PARTITION OF``, so writers go on.
    """
    upper = "" if end is None else f' AND "timestamp" < {_bound(end)}'
    connection.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE {TABLE} INCLUDING DEFAULTS)')
    connection.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
        f'WHERE "timestamp" >= {_bound(start)}{upper} RETURNING *) '
        f'INSERT INTO "{name}" SELECT * FROM moved'
    )
    connection.exec_driver_sql(
        f'ALTER TABLE {TABLE} ATTACH PARTITION "{name}" FOR VALUES {_range(start, end)}'
    )


# -- converting -----------------------------------------------------------------------------


def _create_indexes(connection: Connection, *, partitioned: bool) -> None:
    """The model's indexes on ``event_log``; on a partitioned table unique ones without
    the partition key become plain (PostgreSQL cannot enforce them across partitions)."""
    quote = connection.dialect.identifier_preparer.quote
    for index in sorted(indexes_on(connection.dialect), key=lambda i: str(i.name)):
        columns = [c.name for c in index.columns]
        unique = bool(index.unique) and (not partitioned or "timestamp" in columns)
        connection.exec_driver_sql(
            f"CREATE {'UNIQUE ' if unique else ''}INDEX {quote(str(index.name))} "
            f"ON {TABLE} ({', '.join(quote(c) for c in columns)})"
        )


def _swap_in(connection: Connection, new: str) -> None:
    # The old table goes with its indexes and constraint, freeing their names.
    connection.exec_driver_sql(f"DROP TABLE {TABLE}")
    connection.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {TABLE}")


def _to_partitioned(connection: Connection, by: PartitionBy, ahead: int | None) -> None:
    new = "event_log_partitioning"
    connection.exec_driver_sql(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    connection.exec_driver_sql(
        f'CREATE TABLE {new} (LIKE {TABLE} INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp")'
    )
    connection.exec_driver_sql(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {new} DEFAULT")
    connection.exec_driver_sql(f"COMMENT ON TABLE {DEFAULT_PARTITION} IS '{_COMMENT.format(by)}'")
    # One partition per period that holds rows (never a run of empty ones
    # between far-apart rows), each made before the rows are copied.
    trunc = "day" if by == "day" else "month"
    periods = connection.execute(
        text(
            f"SELECT DISTINCT date_trunc('{trunc}', \"timestamp\" AT TIME ZONE 'UTC') "
            f"FROM {TABLE} ORDER BY 1"
        )
    )
    for (naive,) in periods.all():
        start = cast(datetime, naive).replace(tzinfo=UTC)
        end = next_period(start, by)
        name = partition_name(start, by)
        connection.exec_driver_sql(
            f'CREATE TABLE "{name}" PARTITION OF {new} FOR VALUES {_range(start, end)}'
        )
    connection.exec_driver_sql(f"INSERT INTO {new} SELECT * FROM {TABLE}")
    _swap_in(connection, new)
    connection.exec_driver_sql(
        f'ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY (id, "timestamp")'
    )
    _create_indexes(connection, partitioned=True)
    ensure_partitions(connection, ahead=ahead)


def _to_plain(connection: Connection) -> None:
    new = "event_log_unpartitioning"
    connection.exec_driver_sql(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    connection.exec_driver_sql(f"CREATE TABLE {new} (LIKE {TABLE} INCLUDING DEFAULTS)")
    connection.exec_driver_sql(f"INSERT INTO {new} SELECT * FROM {TABLE}")
    _swap_in(connection, new)  # drops every partition with the parent
    connection.exec_driver_sql(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY (id)")
    _create_indexes(connection, partitioned=False)


def set_partitioning(
    connection: Connection, by: PartitionLayout, *, ahead: int | None = None
) -> bool:
    """Make ``event_log`` partitioned by ``by`` ("day", "month") or plain ("none").

    Every row is kept (copied in this transaction, which holds an exclusive
    lock on the table). Returns whether anything changed. ``ValueError`` for
    another value, on SQLite (except "none", a no-op there), and for a table
    already partitioned the other way (convert it back with "none" first).
    """
    check_partition_by(by)
    if by == "none" and connection.dialect.name != "postgresql":
        return False
    require_postgresql(connection.dialect.name)
    if _relkind(connection, TABLE) is None:
        raise ValueError("there is no event_log table to partition: run event_log.upgrade() first")
    # Before any table lock: partition maintenance takes this lock first too.
    _lock(connection)
    current = partitioning(connection)
    if by == "none":
        if current is None:
            return False
        _to_plain(connection)
        return True
    if current == by:
        ensure_partitions(connection, ahead=ahead)
        return False
    if current is not None:
        raise ValueError(
            f"event_log is already partitioned by {current}; "
            "make it a plain table first (partition='none'; event-log db partition --by none)"
        )
    _to_partitioned(connection, by, ahead)
    return True


# -- pruning --------------------------------------------------------------------------------


def detach_expired(
    connection: Connection, cutoff: datetime, *, lock_timeout_ms: int | None = None
) -> list[str] | None:
    """Detach every range partition whose rows are all older than ``cutoff``.

    Each is renamed ``event_log_expired_...``: no new row can reach it, and
    :func:`drop_detached` counts and drops it in a transaction that holds no
    lock on ``event_log``. Returns the new names; None when ``event_log`` is not
    partitioned.
    """
    if partitioning(connection) is None:
        return None
    _lock(connection, lock_timeout_ms)
    detached = []
    for partition in list_partitions(connection):
        if partition.end is None or partition.end > cutoff:
            break
        connection.exec_driver_sql(f'ALTER TABLE {TABLE} DETACH PARTITION "{partition.name}"')
        expired = EXPIRED_PREFIX + partition.name.removeprefix("event_log_")
        connection.exec_driver_sql(f'ALTER TABLE "{partition.name}" RENAME TO "{expired}"')
        detached.append(expired)
    return detached


def drop_detached(connection: Connection) -> int:
    """Count and drop every detached expired partition; return their rows."""
    if connection.dialect.name != "postgresql":
        return 0
    _lock(connection)
    names = connection.execute(
        text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relnamespace = current_schema()::regnamespace AND relname LIKE :pattern"
        ),
        {"pattern": EXPIRED_PREFIX.replace("_", r"\_") + "%"},
    )
    rows = 0
    for (name,) in names.all():
        rows += int(connection.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar() or 0)
        connection.exec_driver_sql(f'DROP TABLE "{name}"')
    return rows
