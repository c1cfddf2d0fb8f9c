"""Add the commit sequence that follow() reads in: event_log.seq and event_log_sequence.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:20:00

Existing rows (including rows adopted from the original system) are numbered
in (timestamp, id) order, and the counter starts after them. See
``event_log._schema.EventSequence`` for why a counter row gives commit order.

Everything this revision uses is written out here, never imported from
``event_log`` (the table options, and the test for a time-partitioned table
that ``event_log._partition`` makes), so it keeps meaning the same whatever
the library becomes.

MariaDB commits each DDL statement as it goes, so there a failed upgrade is
not rolled back; every step checks whether an earlier attempt already did it,
so running the upgrade again completes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen at this revision on purpose: a migration must mean the same thing forever.
# MariaDB: InnoDB, utf8mb4, bytewise and case-sensitive text (no pad space), as in 0001.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}

# Number what is already there, in (timestamp, id) order.
_NUMBER_ROWS = {
    # UPDATE ... FROM: PostgreSQL, SQLite >= 3.33.
    "default": 'UPDATE event_log SET seq = numbered.n FROM (SELECT id, row_number() OVER '
    '(ORDER BY "timestamp", id) AS n FROM event_log) AS numbered '
    "WHERE event_log.id = numbered.id",
    # MariaDB: a multi-table UPDATE over a derived table.
    "mysql": "UPDATE event_log JOIN (SELECT id, row_number() OVER "
    "(ORDER BY `timestamp`, id) AS n FROM event_log) AS numbered "
    "ON event_log.id = numbered.id SET event_log.seq = numbered.n",
}


def upgrade() -> None:
    bind = op.get_bind()
    mysql = bind.dialect.name in ("mysql", "mariadb")
    # Only MariaDB can meet a half-done earlier attempt (see the docstring);
    # the unique index is the last step, so with it everything else is done.
    inspector = sa.inspect(bind) if mysql and not context.is_offline_mode() else None
    if inspector is not None and any(
        index["name"] == "ix_event_log_seq" for index in inspector.get_indexes("event_log")
    ):
        return
    if inspector is None or "seq" not in {c["name"] for c in inspector.get_columns("event_log")}:
        op.add_column("event_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    if inspector is None or not inspector.has_table("event_log_sequence"):
        op.create_table(
            "event_log_sequence",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("last_seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log_sequence")),
            **MYSQL_TABLE_OPTIONS,
        )
    else:
        op.execute("DELETE FROM event_log_sequence")
    op.execute(_NUMBER_ROWS["mysql" if mysql else "default"])
    op.execute(
        "INSERT INTO event_log_sequence (id, last_seq) "
        "SELECT 1, coalesce(max(seq), 0) FROM event_log"
    )
    # A table partitioned by time (e.g. after a downgrade to 0001) cannot have
    # a unique index without the timestamp: plain there.
    # (Offline SQL is for a fresh database, never partitioned.)
    unique = context.is_offline_mode() or not _partitioned(op.get_bind())
    op.create_index(op.f("ix_event_log_seq"), "event_log", ["seq"], unique=unique)


def downgrade() -> None:
    op.drop_index(op.f("ix_event_log_seq"), table_name="event_log")
    op.drop_table("event_log_sequence")
    with op.batch_alter_table("event_log") as batch:
        batch.drop_column("seq")


# Frozen at this revision on purpose: a migration must mean the same thing forever.
def _partitioned(bind: sa.Connection) -> bool:
    """Whether ``event_log`` is a partitioned table, which only PostgreSQL has.

    Time partitioning turns ``event_log`` into one (relkind ``p``); a plain
    table, a missing one and every other database answer False.
    """
    if bind.dialect.name != "postgresql":
        return False
    kind = bind.execute(
        sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:name)"),
        {"name": "event_log"},
    ).scalar()
    return kind == "p"
