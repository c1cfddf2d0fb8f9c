"""Number rows other writers insert without a seq, and keep the original module's DDL a no-op.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

While a system migrates, the original module (ADR 017) and event-log write to
the same SQLite file. The original knows nothing of ``seq``: its rows were
readable but ``follow()`` never yielded them. On SQLite this revision adds:

- The trigger ``event_log_number_rows_without_seq``: after an INSERT whose
  ``seq`` is NULL it bumps ``event_log_sequence`` and gives the row the new
  number, inside the inserting transaction. SQLite has one writer at a time,
  so that is commit order, as for event-log's own writes, and ``follow()``
  yields such rows exactly once. The same statement rewrites the row's
  ``timestamp`` to event-log's fixed-width UTC text
  (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``, whose text order is time order) and
  its ``data`` as revision 0001's adoption does (JSON ``null`` becomes NULL, a
  value that is not an object becomes ``{"value": ...}``, the text compact).
  Timestamps it cannot rewrite exactly are kept as written (see
  ``_utc_text``); so is data that is not JSON: the trigger never makes an
  INSERT fail. event-log's own inserts always set ``seq``, so for them the
  trigger's WHEN clause is all that runs.
- The empty table ``event_log_original_index_names``, holding the names of the
  original's indexes (``idx_event_log_*``). The original runs ``CREATE INDEX
  IF NOT EXISTS`` with those names on every call; on the table 0001 adopted
  they are free again, so each would add an index duplicating one of
  event-log's own (slowing its writes, and drift for ``alembic check``). Index
  names are per database on SQLite, so with the names taken that DDL does
  nothing. env.py leaves this table out of the drift check. Indexes the
  original already added since 0001 are dropped first.

Rows already stored without ``seq`` get the same treatment, then numbers after
the counter's, in (timestamp, id) order as 0002 numbered its rows.

PostgreSQL and MariaDB: nothing. The original module writes SQLite files only,
and event-log always sets ``seq`` there. (On PostgreSQL a trigger would also
be lost when time partitioning rebuilds the table.)

Everything this revision uses is written out here, never imported from
``event_log``, so it keeps meaning the same whatever the library becomes.
Downgrading drops the trigger and the table; numbers and rewritten values stay.
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

# 0001-01-01T00:00:00 and 9999-12-31T23:59:59 UTC in Unix seconds: Python's datetime range.
_FIRST_SECOND, _LAST_SECOND = -62_135_596_800, 253_402_300_799
_DATE_TIME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][Tt ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
_HH_MM = "[+-][0-9][0-9]:[0-9][0-9]"


def _utc_text(src: str) -> str:
    """SQL: the ISO 8601 text ``src`` as fixed-width UTC text, NULL when not rewritable.

    Rewritten exactly, to the microsecond: a date and a time to the second
    (separated by ``T``, ``t`` or a space), an optional fraction of any length
    (``.`` or ``,``; truncated to microseconds as Python reads it), and no
    offset (UTC, as 0001 reads naive values), ``Z``, or ``+HH:MM``,
    ``+HH:MM:SS``, ``+HHMM``, ``+HH`` (or ``-``). That covers what
    ``datetime.isoformat()`` and ``str(datetime)`` write for every offset
    but those with a fraction of a second. Anything else, an invalid date or
    time, or an instant outside years 1..9999 in UTC is NULL.
    The arithmetic is on whole Unix seconds and integer microseconds:
    SQLite's own date functions keep only milliseconds. (No colon is followed by
    a word character here: ``op.execute`` would take ``:name`` for a parameter.)
    """
    return f"""(SELECT CASE WHEN ok AND strftime('%Y-%m-%dT%H:%M:%S', unix, 'unixepoch') = base
        AND unix * 1000000 + us - offset_us BETWEEN {_FIRST_SECOND} * 1000000
            AND {_LAST_SECOND} * 1000000 + 999999
    THEN strftime('%Y-%m-%dT%H:%M:%S',
            (unix * 1000000 + us - offset_us - utc_us) / 1000000, 'unixepoch')
        || '.' || substr('00000' || utc_us, -6) || '+00:00' END
FROM (SELECT ok, base, us, offset_us, CAST(strftime('%s', base) AS INTEGER) AS unix,
        ((CAST(strftime('%s', base) AS INTEGER) * 1000000 + us - offset_us) % 1000000
            + 1000000) % 1000000 AS utc_us
    FROM (SELECT base,
            base_ok AND (f = '' OR (f GLOB '[.,][0-9]*' AND substr(f, 2) NOT GLOB '*[^0-9]*'))
                AND (z IN ('', 'Z') OR z GLOB '{_HH_MM}' OR z GLOB '{_HH_MM}:[0-9][0-9]')
                AND substr(z, 2, 2) < '24' AND substr(z, 5, 2) < '60'
                AND substr(z, 8, 2) < '60' AS ok,
            CAST(substr(substr(f, 2) || '000000', 1, 6) AS INTEGER) AS us,
            CASE substr(z, 1, 1) WHEN '+' THEN 1 WHEN '-' THEN -1 ELSE 0 END
                * (CAST(substr(z, 2, 2) AS INTEGER) * 3600
                    + CAST(substr(z, 5, 2) AS INTEGER) * 60
                    + CAST(substr(z, 8, 2) AS INTEGER)) * 1000000 AS offset_us
        FROM (SELECT base, base_ok, substr(r, 1, zone - 1) AS f,
                CASE WHEN substr(r, zone) GLOB '[+-][0-9][0-9]'
                        THEN substr(r, zone) || ':' || '00'
                    WHEN substr(r, zone) GLOB '[+-][0-9][0-9][0-9][0-9]'
                        THEN substr(r, zone, 3) || ':' || substr(r, zone + 3, 2)
                    ELSE substr(r, zone) END AS z
            FROM (SELECT base, base_ok, r,
                    CASE WHEN instr(r, '+') THEN instr(r, '+')
                        WHEN instr(r, '-') THEN instr(r, '-')
                        WHEN instr(r, 'Z') THEN instr(r, 'Z')
                        ELSE length(r) + 1 END AS zone
                FROM (SELECT substr(t, 1, 10) || 'T' || substr(t, 12, 8) AS base,
                        substr(t, 1, 19) GLOB '{_DATE_TIME}' AS base_ok,
                        substr(t, 20) AS r
                    FROM (SELECT trim({src}, ' ' || char(9, 10, 11, 12, 13)) AS t
                        WHERE typeof({src}) = 'text')))))))"""


def _data(src: str) -> str:
    """SQL: the data text ``src`` as revision 0001 stores it; anything not JSON unchanged."""
    return f"""CASE WHEN typeof({src}) <> 'text' OR NOT json_valid({src}) THEN {src}
    WHEN json_type({src}) = 'null' THEN NULL
    WHEN json_type({src}) = 'object' THEN json({src})
    ELSE json_object('value', json({src})) END"""


def _normalized(row: str) -> str:
    """SQL: the SET clause that rewrites ``row``'s timestamp and data."""
    timestamp, data = f'{row}."timestamp"', f"{row}.data"
    return f'"timestamp" = coalesce({_utc_text(timestamp)}, {timestamp}), data = {_data(data)}'


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


def _create_trigger() -> str:
    return f"""CREATE TRIGGER {TRIGGER} AFTER INSERT ON event_log
FOR EACH ROW WHEN NEW.seq IS NULL
BEGIN
    UPDATE event_log_sequence SET last_seq = last_seq + 1 WHERE id = 1;
    UPDATE event_log SET seq = (SELECT last_seq FROM event_log_sequence WHERE id = 1),
        {_normalized("NEW")}
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
    op.execute(f"UPDATE event_log SET {_normalized('event_log')} WHERE seq IS NULL")
    op.execute(_NUMBER_ROWS)
    op.execute(_CATCH_UP_COUNTER)
    op.execute(_create_trigger())


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    op.execute(f"DROP TRIGGER {TRIGGER}")
    op.execute(f"DROP TABLE {NAMES_TABLE}")
