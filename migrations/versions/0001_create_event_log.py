"""Create event_log, adopting the original system's table when there is one.

Revision ID: 0001
Revises:
Create Date: 2026-03-01 12:00:00

Everything this revision uses is written out here, never imported from
``event_log``: the column types, table options and index names (the model in
``event_log._schema`` has them too) and the row conversion (a copy of
``event_log._adopt`` as it was). So this revision keeps meaning the same schema
and the same adoption whatever the library becomes; ``alembic check`` proves
that the schema and the model still agree at head.

Adoption: the original system created ``event_log`` itself, every
column ``TEXT``, with indexes ``idx_event_log_*``. When an online upgrade
finds such a table, the table is renamed aside, its indexes dropped, the new
table and indexes created, every row copied in batches through
``_convert_row`` (ISO text timestamps to aware UTC, JSON text to strict JSON),
the row count verified and the old table dropped. All of it runs in the
upgrade's one transaction (env.py sees to that on SQLite too), so a row that
cannot be converted fails the upgrade with its id and leaves the original
table as it was. Offline ``--sql`` scripts assume a fresh database.

MariaDB: the tables are InnoDB, utf8mb4 with a binary collation without pad
space (``MYSQL_TABLE_OPTIONS``), ``timestamp`` is DATETIME(6) holding UTC and
``data`` is JSON. MariaDB commits DDL as it goes, so an upgrade
that fails there is not rolled back: a failure after CREATE TABLE leaves an
empty ``event_log`` without a revision, which the next upgrade adopts (it has
the original's columns and no rows), so running the upgrade again completes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.exc import SQLAlchemyError

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("event_log.migrations")

# Frozen at this revision on purpose: a migration must mean the same thing forever.
TABLE = "event_log"
# Where an original table waits while its rows are copied; gone after upgrade.
ORIGINAL = "event_log_original"
COLUMNS = ("id", "event_type", "source", "task_id", "agent_id", "data", "timestamp")
BATCH_SIZE = 5_000

# timestamptz on PostgreSQL; DATETIME(6) holding UTC on MariaDB; on SQLite
# fixed-width UTC text "2026-03-01T12:00:00.123456+00:00", so text order is time order.
TIMESTAMP = (
    sa.String(32)
    .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
    .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
)
# jsonb on PostgreSQL; JSON (LONGTEXT with a JSON_VALID check) on MariaDB; JSON text on SQLite.
JSON_DATA = (
    sa.Text()
    .with_variant(postgresql.JSONB(), "postgresql")
    .with_variant(mysql.JSON(), "mysql", "mariadb")
)
# MariaDB: InnoDB, utf8mb4, bytewise and case-sensitive text (no pad space).
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}
_MYSQL = ("mysql", "mariadb")

# Every index ends in (timestamp, id), the order of every listing.
INDEXES: dict[str, list[str]] = {
    "ix_event_log_timestamp_id": ["timestamp", "id"],
    "ix_event_log_task_id_timestamp_id": ["task_id", "timestamp", "id"],
    "ix_event_log_agent_id_timestamp_id": ["agent_id", "timestamp", "id"],
    "ix_event_log_event_type_timestamp_id": ["event_type", "timestamp", "id"],
}


def upgrade() -> None:
    """Create event_log and its indexes, adopting an original table's rows."""
    adopting = not context.is_offline_mode() and sa.inspect(op.get_bind()).has_table(TABLE)
    if adopting:
        _set_original_aside(op.get_bind())
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=True),
        sa.Column("agent_id", sa.String(255), nullable=True),
        sa.Column("data", JSON_DATA, nullable=True),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log")),
        **MYSQL_TABLE_OPTIONS,
    )
    for name, columns in INDEXES.items():
        op.create_index(op.f(name), TABLE, columns)
    if adopting:
        _copy_original_rows(op.get_bind())
        op.drop_table(ORIGINAL)


def downgrade() -> None:
    """Drop event_log and its indexes."""
    for name in reversed(INDEXES):
        op.drop_index(op.f(name), table_name=TABLE)
    op.drop_table(TABLE)


def _set_original_aside(bind: sa.Connection) -> None:
    inspector = sa.inspect(bind)
    found = {column["name"] for column in inspector.get_columns(TABLE)}
    missing = set(COLUMNS) - found
    if missing:
        raise _AdoptionError(
            f"a table {TABLE!r} exists but is not the original event log: it lacks the "
            f"columns {sorted(missing)}; move it out of the way before upgrading"
        )
    if inspector.has_table(ORIGINAL):
        raise _AdoptionError(
            f"cannot adopt the original {TABLE!r} table: a table {ORIGINAL!r} is in the way"
        )
    # Index names are per schema on PostgreSQL and per database on SQLite;
    # the originals (idx_event_log_*) go now, with the table they served.
    for index in inspector.get_indexes(TABLE):
        if index["name"]:
            op.drop_index(index["name"], table_name=TABLE)
    op.rename_table(TABLE, ORIGINAL)


def _insert_statement(bind: sa.Connection) -> sa.TextClause:
    # Plain text SQL binds the values as they are: JSON text cast to jsonb on
    # PostgreSQL (a typed JSONB column would encode the text a second time).
    data = "CAST(:data AS JSONB)" if bind.dialect.name == "postgresql" else ":data"
    timestamp = bind.dialect.identifier_preparer.quote_identifier("timestamp")
    return sa.text(
        f"INSERT INTO {TABLE} (id, event_type, source, task_id, agent_id, data, {timestamp}) "
        f"VALUES (:id, :event_type, :source, :task_id, :agent_id, {data}, :timestamp)"
    )


def _parameters(row: _AdoptedRow, dialect: str) -> dict[str, Any]:
    parameters = row._asdict()
    if dialect in _MYSQL:
        # DATETIME(6) holds naive UTC.
        parameters["timestamp"] = row.timestamp.replace(tzinfo=None)
    elif dialect != "postgresql":
        # Fixed width, UTC, microseconds: the text order is the time order.
        parameters["timestamp"] = row.timestamp.isoformat(timespec="microseconds")
    return parameters


def _copy_original_rows(bind: sa.Connection) -> None:
    """Copy every original row into the new table, BATCH_SIZE rows per round trip."""
    dialect = bind.dialect.name
    # Untyped columns hand back whatever the driver read, to be checked by _convert_row.
    original = sa.table(
        ORIGINAL, *(sa.column(name, sa.Text() if name == "id" else None) for name in COLUMNS)
    )
    total = bind.execute(sa.select(sa.func.count()).select_from(original)).scalar_one()
    without_id = bind.execute(
        sa.select(sa.func.count()).select_from(original).where(original.c.id.is_(None))
    ).scalar_one()
    if without_id:
        # SQLite lets a TEXT PRIMARY KEY hold NULL; such rows have no id to keep.
        raise _AdoptionError(
            f"cannot adopt the original {TABLE!r} table: {without_id} row(s) have a NULL id"
        )
    log.info("adopting %d rows of the original %s table", total, TABLE)

    insert = _insert_statement(bind)
    # Keyset pagination on the primary key: each batch is an index range scan.
    query = sa.select(*original.c).order_by(original.c.id).limit(BATCH_SIZE)
    copied = 0
    last_id: Any = None
    while True:
        batch = query if last_id is None else query.where(original.c.id > last_id)
        rows = bind.execute(batch).all()
        if not rows:
            break
        bind.execute(insert, [_parameters(_convert_row(*row), dialect) for row in rows])
        copied += len(rows)
        last_id = rows[-1][0]

    if copied != total:
        raise _AdoptionError(
            f"adopting the original {TABLE!r} table copied {copied} of {total} rows"
        )


# Frozen at this revision on purpose: a migration must mean the same thing forever.
# The widths of the VARCHAR columns created above, checked here so an over-long
# value fails with the row's id on every backend, not as an anonymous driver
# error on PostgreSQL and silently on SQLite.
_MAX_LENGTHS = {"id": 36, "event_type": 64, "source": 255, "task_id": 255, "agent_id": 255}


class _AdoptionError(SQLAlchemyError):
    """A row of the original table cannot be carried over; the upgrade is rolled back.

    A SQLAlchemy error because that is what the code running a migration treats
    as the upgrade failing: ``event_log.upgrade()`` raises it as a ``StorageError``
    (this is its ``__cause__``, and its message ends with this one).
    """


class _AdoptedRow(NamedTuple):
    """One row in the new table's storage form (``timestamp`` aware UTC, ``data`` JSON text)."""

    id: str
    event_type: str
    source: str
    task_id: str | None
    agent_id: str | None
    data: str | None
    timestamp: datetime


def _normalize_timestamp(value: str | datetime) -> datetime:
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


def _normalize_data(value: str | bytes | dict[str, Any] | list[Any] | None) -> str | None:
    """JSON text as compact, strict JSON text of an object; ``None`` and ``null`` become ``None``.

    An event's data is an object, so any other JSON value (a list, a number, a
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
        raise _AdoptionError(
            f"cannot adopt event_log row id={row_id!r}: {column} is {len(text)} characters "
            f"long, the new table allows {limit}"
        )
    return text


def _required(row_id: object, column: str, value: object) -> str:
    if value is None:
        raise _AdoptionError(f"cannot adopt event_log row id={row_id!r}: {column} is NULL")
    return _checked(row_id, column, value)


def _optional(row_id: object, column: str, value: object) -> str | None:
    return None if value is None else _checked(row_id, column, value)


def _convert_row(
    row_id: Any,
    event_type: Any,
    source: Any,
    task_id: Any,
    agent_id: Any,
    data: Any,
    timestamp: Any,
) -> _AdoptedRow:
    """One original row in the new storage form, or :class:`_AdoptionError` naming the row."""
    new_id = _required(row_id, "id", row_id)
    if timestamp is None:
        raise _AdoptionError(f"cannot adopt event_log row id={row_id!r}: timestamp is NULL")
    try:
        when = _normalize_timestamp(
            timestamp if isinstance(timestamp, datetime) else str(timestamp)
        )
    except ValueError as exc:
        raise _AdoptionError(
            f"cannot adopt event_log row id={row_id!r}: timestamp {timestamp!r} is not an "
            f"ISO 8601 date-time ({exc})"
        ) from exc
    try:
        text = _normalize_data(data)
    except (ValueError, TypeError) as exc:
        raise _AdoptionError(
            f"cannot adopt event_log row id={row_id!r}: data is not JSON ({exc}): {data!r:.200}"
        ) from exc
    return _AdoptedRow(
        id=new_id,
        event_type=_required(row_id, "event_type", event_type),
        source=_required(row_id, "source", source),
        task_id=_optional(row_id, "task_id", task_id),
        agent_id=_optional(row_id, "agent_id", agent_id),
        data=text,
        timestamp=when,
    )
