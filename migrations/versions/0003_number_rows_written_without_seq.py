"""Number rows other writers insert without a seq, and keep the original module's DDL a no-op.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

While a system migrates, the original module and event-log write to
the same SQLite file. The original knows nothing of ``seq``: its rows were
readable but ``follow()`` never yielded them. On SQLite this revision adds:

- The trigger ``event_log_number_rows_without_seq``: after an INSERT whose
  ``seq`` is NULL it bumps ``event_log_sequence`` and gives the row the new
  number, inside the inserting transaction. SQLite has one writer at a time,
  so that is commit order, as for event-log's own writes, and ``follow()``
  yields such rows exactly once.
- The empty table ``event_log_original_index_names``, holding the names of the
  original's indexes (``idx_event_log_*``). The original runs ``CREATE INDEX
  IF NOT EXISTS`` with those names on every call; on the table 0001 adopted
  they are free again, so each would add an index duplicating one of
  event-log's own (slowing its writes, and drift for ``alembic check``). Index
  names are per database on SQLite, so with the names taken that DDL does
  nothing. env.py leaves this table out of the drift check. Indexes the
  original already added since 0001 are dropped first.

Rows already stored without ``seq`` are numbered after the counter, in
(timestamp, id) order as 0002 numbered its rows.

Why the trigger only numbers. SQLite compiles an INSERT trigger, its WHEN
clause included, into every INSERT on the table, event-log's own too. An
INSERT with a trigger that may abort (a constraint whose conflict action is
the default ABORT, or a call of any SQL function anywhere in it, trigger
included) keeps a statement journal for every row it inserts in a
transaction, which halved event-log's batch writes. So the trigger calls no
function and rolls back rather than aborts, and event-log inserts with
``INSERT OR ROLLBACK`` (its write transactions are all or nothing anyway):
its rows then cost the WHEN test alone. Rewriting the original's
timestamps to event-log's fixed-width form would take string functions, so
they stay as written: ``isoformat()`` text of UTC, naive or ``+00:00``, which
event-log reads as the instant meant and which sorts among its own text in
time order, but for rows of the very same microsecond.

PostgreSQL and MariaDB: nothing. The original module writes SQLite files only,
and event-log always sets ``seq`` there. (On PostgreSQL a trigger would also
be lost when time partitioning rebuilds the table.)

Everything this revision uses is written out here, never imported from
``event_log``, so it keeps meaning the same whatever the library becomes.
Downgrading drops the trigger and the table; the numbers given stay.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen at this revision on purpose: a migration must mean the same thing forever.
TRIGGER = "event_log_number_rows_without_seq"
NAMES_TABLE = "event_log_original_index_names"
# The original's index names. The repository's re-creations of its DDL name the
# timestamp index both ways, so both are held.
ORIGINAL_INDEX_NAMES = (
    "idx_event_log_task",
    "idx_event_log_agent",
    "idx_event_log_type",
    "idx_event_log_time",
    "idx_event_log_timestamp",
)

# Existing rows without seq: numbered after the counter, in (timestamp, id) order.
_NUMBER_ROWS = (
    "UPDATE event_log SET seq = numbered.n + "
    "(SELECT last_seq FROM event_log_sequence WHERE id = 1) "
    'FROM (SELECT id, row_number() OVER (ORDER BY "timestamp", id) AS n '
    "FROM event_log WHERE seq IS NULL) AS numbered WHERE event_log.id = numbered.id"
)
_CATCH_UP_COUNTER = (
    "UPDATE event_log_sequence SET last_seq = "
    "max(last_seq, (SELECT coalesce(max(seq), 0) FROM event_log)) WHERE id = 1"
)
# No function calls and no ABORT: see the docstring.
_CREATE_TRIGGER = f"""CREATE TRIGGER {TRIGGER} AFTER INSERT ON event_log
FOR EACH ROW WHEN NEW.seq IS NULL
BEGIN
    UPDATE OR ROLLBACK event_log_sequence SET last_seq = last_seq + 1 WHERE id = 1;
    UPDATE OR ROLLBACK event_log
        SET seq = (SELECT last_seq FROM event_log_sequence WHERE id = 1)
        WHERE rowid = NEW.rowid;
END"""


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for name in ORIGINAL_INDEX_NAMES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"CREATE TABLE {NAMES_TABLE} (name TEXT)")
    for name in ORIGINAL_INDEX_NAMES:
        op.execute(f"CREATE INDEX {name} ON {NAMES_TABLE} (name)")
    op.execute(_NUMBER_ROWS)
    op.execute(_CATCH_UP_COUNTER)
    op.execute(_CREATE_TRIGGER)


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    op.execute(f"DROP TRIGGER {TRIGGER}")
    op.execute(f"DROP TABLE {NAMES_TABLE}")
