"""Create event_log, adopting the original system's table when there is one.

Revision ID: 0001
Revises:
Create Date: 2026-03-01 12:00:00

The column types are spelled out here rather than imported from
``event_log._schema``, so this revision keeps meaning the same schema whatever
the model becomes; ``alembic check`` proves the two agree.

Adoption: the original system (ADR 017) created ``event_log`` itself, every
column ``TEXT``, with indexes ``idx_event_log_*``. When an online upgrade
finds such a table, the table is renamed aside, its indexes dropped, the new
table and indexes created, every row copied in batches through
``event_log._adopt.convert_row`` (ISO text timestamps to aware UTC, JSON text
to strict JSON), the row count verified and the old table dropped. All of it
runs in the upgrade's one transaction (env.py sees to that on SQLite too), so
a row that cannot be converted fails the upgrade with its id and leaves the
original table as it was. Offline ``--sql`` scripts assume a fresh database.

MariaDB: the tables are InnoDB, utf8mb4 with a binary collation without pad
space (``event_log._schema.MYSQL_TABLE_OPTIONS``), ``timestamp`` is DATETIME(6)
holding UTC and ``data`` is JSON. MariaDB commits DDL as it goes, so an upgrade
that fails there is not rolled back: a failure after CREATE TABLE leaves an
empty ``event_log`` without a revision, which the next upgrade adopts (it has
the original's columns and no rows), so running the upgrade again completes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql, postgresql

from event_log._adopt import AdoptedRow, AdoptionError, convert_row

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("event_log.migrations")

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
# Spelled out, like the types; event_log._schema.MYSQL_TABLE_OPTIONS is the same.
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
        raise AdoptionError(
            f"a table {TABLE!r} exists but is not the original event log: it lacks the "
            f"columns {sorted(missing)}; move it out of the way before upgrading"
        )
    if inspector.has_table(ORIGINAL):
        raise AdoptionError(
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


def _parameters(row: AdoptedRow, dialect: str) -> dict[str, Any]:
    parameters = row._asdict()
    if dialect in _MYSQL:
        # DATETIME(6) holds naive UTC.
        parameters["timestamp"] = row.timestamp.replace(tzinfo=None)
    elif dialect != "postgresql":
        # event_log._schema.format_utc's form: fixed width, UTC, microseconds.
        parameters["timestamp"] = row.timestamp.isoformat(timespec="microseconds")
    return parameters


def _copy_original_rows(bind: sa.Connection) -> None:
    """Copy every original row into the new table, BATCH_SIZE rows per round trip."""
    dialect = bind.dialect.name
    # Untyped columns hand back whatever the driver read, to be checked by convert_row.
    original = sa.table(
        ORIGINAL, *(sa.column(name, sa.Text() if name == "id" else None) for name in COLUMNS)
    )
    total = bind.execute(sa.select(sa.func.count()).select_from(original)).scalar_one()
    without_id = bind.execute(
        sa.select(sa.func.count()).select_from(original).where(original.c.id.is_(None))
    ).scalar_one()
    if without_id:
        # SQLite lets a TEXT PRIMARY KEY hold NULL; such rows have no id to keep.
        raise AdoptionError(
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
        bind.execute(insert, [_parameters(convert_row(*row), dialect) for row in rows])
        copied += len(rows)
        last_id = rows[-1][0]

    if copied != total:
        raise AdoptionError(
            f"adopting the original {TABLE!r} table copied {copied} of {total} rows"
        )
