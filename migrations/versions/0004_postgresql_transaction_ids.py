"""PostgreSQL reads commit order from transaction ids: event_log.xid, no counter row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:00:00

Until now every write transaction on PostgreSQL began by bumping the one row
of ``event_log_sequence`` and held that row's lock until it committed, so
writers from every process and machine took turns. From here on:

- ``event_log.xid`` holds the id of the transaction that wrote the row
  (``pg_current_xact_id()``, as a bigint), filled in by the server through the
  column's default, so any writer's rows carry it. ``follow()`` reads what
  became visible between two snapshots of the server
  (``event_log.backends.postgresql._snapshots``).
- The index ``ix_event_log_xid_id`` on ``(xid, id)`` serves those reads.
- ``event_log_sequence`` and the index on ``seq`` are dropped. Rows keep the
  numbers they had; new rows have none.

Existing rows get no xid (NULL): they were committed before the upgrade, so
no snapshot taken afterwards can see them as new. Adding the column without a
default first, then setting the default, keeps the upgrade from rewriting the
table.

Downgrading numbers the rows written since, after the highest number, in the
order of their transactions' ids (then time and id), recreates the counter at
that highest number and the index on ``seq``, and drops ``xid``.

SQLite and MariaDB keep the counter (SQLite has one writer at a time anyway;
see the documentation for MariaDB's ceiling). They get the same column, always
NULL, so the model is one table everywhere.

Everything this revision uses is written out here, never imported from
``event_log``, so it keeps meaning the same whatever the library becomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen at this revision on purpose: a migration must mean the same thing forever.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}
_XID_DEFAULT = "(pg_current_xact_id()::text::bigint)"

# Rows without a number (written since the upgrade), numbered after the highest.
_NUMBER_NEW_ROWS = (
    "UPDATE event_log SET seq = numbered.n FROM (SELECT id, "
    "(SELECT coalesce(max(seq), 0) FROM event_log) + row_number() OVER "
    '(ORDER BY xid NULLS FIRST, "timestamp", id) AS n '
    "FROM event_log WHERE seq IS NULL) AS numbered "
    "WHERE event_log.id = numbered.id AND event_log.seq IS NULL"
)


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect != "postgresql":
        # Only MariaDB can meet a half-done earlier attempt (DDL commits as it goes).
        if not _has_column("xid"):
            op.add_column("event_log", sa.Column("xid", sa.BigInteger(), nullable=True))
        return
    op.add_column("event_log", sa.Column("xid", sa.BigInteger(), nullable=True))
    op.execute(f"ALTER TABLE event_log ALTER COLUMN xid SET DEFAULT {_XID_DEFAULT}")
    op.create_index(op.f("ix_event_log_xid_id"), "event_log", ["xid", "id"])
    op.drop_index(op.f("ix_event_log_seq"), table_name="event_log")
    op.drop_table("event_log_sequence")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        op.execute("ALTER TABLE event_log DROP COLUMN xid")
        return
    if dialect != "postgresql":
        op.drop_column("event_log", "xid")
        return
    op.create_table(
        "event_log_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log_sequence")),
        **MYSQL_TABLE_OPTIONS,
    )
    op.execute(_NUMBER_NEW_ROWS)
    op.execute(
        "INSERT INTO event_log_sequence (id, last_seq) "
        "SELECT 1, coalesce(max(seq), 0) FROM event_log"
    )
    # A table partitioned by time cannot have a unique index without the
    # timestamp: plain there. (Offline SQL is for a fresh database, never partitioned.)
    unique = context.is_offline_mode() or not _partitioned(op.get_bind())
    op.create_index(op.f("ix_event_log_seq"), "event_log", ["seq"], unique=unique)
    op.drop_index(op.f("ix_event_log_xid_id"), table_name="event_log")
    op.drop_column("event_log", "xid")


def _has_column(name: str) -> bool:
    if context.is_offline_mode():
        return False
    columns = sa.inspect(op.get_bind()).get_columns("event_log")
    return any(column["name"] == name for column in columns)


# Frozen at this revision on purpose: a migration must mean the same thing forever.
def _partitioned(bind: sa.Connection) -> bool:
    """Whether ``event_log`` is a partitioned table (relkind ``p``), on PostgreSQL."""
    kind = bind.execute(
        sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:name)"),
        {"name": "event_log"},
    ).scalar()
    return kind == "p"
