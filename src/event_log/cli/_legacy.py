"""``import --from-sqlite``: events from a database of the original system.

The original system wrote SQLite files in one of two layouts, both with the
columns ``id, event_type, source, task_id, agent_id, data, timestamp`` as
``TEXT``:

- table ``event_log`` (ADR 017): ``data`` is JSON text or NULL;
- table ``events`` (the later ``data/events.db``): ``task_id`` and
  ``agent_id`` default to ``''`` and ``data`` to ``'{}'``.

Each row is converted as the adoption of the original table converts it
(``event_log._adopt``: ISO 8601 timestamps with or without a fraction, naive
taken as UTC, offsets turned into UTC; data kept as a JSON object), with ``''``
task and agent ids read as none and ``{}`` or ``null`` data as no data, then
validated like a new event. Ids are kept, and ids already stored are skipped
(``_sql.insert_rows``), so importing twice adds nothing. A row that cannot be
carried over (an event type that is not a dotted lowercase name, a timestamp
that is not a time, data that is not JSON, a missing id) is reported with its
id and skipped, never dropped silently.

The file is read with the standard library's ``sqlite3``, read-only, in
batches on a worker thread (``asyncio.to_thread``), so the event loop and the
writer never wait for it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from event_log import EventLogger, InvalidEventError
from event_log._adopt import normalize_data, normalize_timestamp
from event_log._models import Row, prepare_event
from event_log._redact import Redactor

from ._io import ID_MAX_LENGTH
from ._runtime import CliError
from ._sql import insert_rows

__all__ = [
    "LEGACY_COLUMNS",
    "LEGACY_TABLES",
    "BadRow",
    "LegacyReport",
    "LegacySource",
    "convert_legacy_row",
    "import_legacy",
]

# The logger's default secret masking, applied to imported events too.
_REDACT = Redactor()

LEGACY_TABLES = ("event_log", "events")
LEGACY_COLUMNS = ("id", "event_type", "source", "task_id", "agent_id", "data", "timestamp")
LEGACY_BATCH_ROWS = 1000
_NO_DATA = ("", "{}", "null")


class BadRow(ValueError):
    """A row of the original system's table that cannot be carried over."""


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def convert_legacy_row(values: Sequence[Any], *, max_data_bytes: int) -> Row:
    """One legacy row (``LEGACY_COLUMNS`` in order) as a stored row; ``BadRow`` if it
    cannot be carried over."""
    row_id, event_type, source, task_id, agent_id, data, timestamp = values
    if row_id is None or _text(row_id).strip() == "":
        raise BadRow("id is missing")
    event_id = _text(row_id)
    if len(event_id) > ID_MAX_LENGTH:
        raise BadRow(f"id is {len(event_id)} characters; at most {ID_MAX_LENGTH}")
    if timestamp is None:
        raise BadRow("timestamp is NULL")
    try:
        when = normalize_timestamp(_text(timestamp))
    except ValueError:
        raise BadRow(f"timestamp {timestamp!r} is not an ISO 8601 date-time") from None
    plain: dict[str, Any] | None = None
    if data is not None and not (isinstance(data, str) and data.strip() in _NO_DATA):
        try:
            text = normalize_data(data if isinstance(data, str | bytes) else str(data))
        except (ValueError, TypeError):
            raise BadRow(f"data is not JSON: {data!r:.80}") from None
        if text is not None:
            plain = json.loads(text)
            if not plain:
                plain = None  # {} is no data
    try:
        prepared = prepare_event(
            None if event_type is None else _text(event_type),
            None if source is None else _text(source),
            None if task_id in (None, "") else _text(task_id),
            None if agent_id in (None, "") else _text(agent_id),
            plain,
            when,
            max_data_bytes=max_data_bytes,
            redactor=_REDACT,  # imported data is masked like logged data
        )
    except InvalidEventError as exc:
        raise BadRow(str(exc)) from None
    return (event_id, *prepared.row[1:])


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    # A table name from LEGACY_TABLES only: never from the file.
    return {str(info[1]).lower() for info in conn.execute(f'PRAGMA table_info("{table}")')}


class LegacySource:
    """The legacy tables of one SQLite file, opened read-only, read in batches."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tables: list[str] = []
        self.total = 0
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> LegacySource:
        file = Path(self.path)
        if not file.is_file():
            raise CliError(f"cannot read {self.path}: the file does not exist")
        try:
            # Read-only: importing never changes the original database.
            conn = sqlite3.connect(
                f"{file.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise CliError(f"cannot open {self.path}: {exc}") from None
        self._conn = conn
        try:
            names = {
                str(name)
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            wanted = set(LEGACY_COLUMNS)
            self.tables = [t for t in LEGACY_TABLES if t in names and wanted <= _columns(conn, t)]
            if not self.tables:
                raise CliError(
                    f"{self.path} has no table of the original system: expected 'event_log' "
                    f"or 'events' with the columns {', '.join(LEGACY_COLUMNS)}"
                )
            self.total = sum(
                int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in self.tables
            )
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            raise CliError(f"cannot read {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            self._conn = None
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def batches(self, table: str, size: int) -> Generator[list[tuple[Any, ...]], None, None]:
        """The rows of ``table`` (``LEGACY_COLUMNS`` in order), ``size`` at a time. Each
        ``next()`` is blocking: call it on a worker thread."""
        assert self._conn is not None
        assert table in self.tables
        columns = ", ".join(f'"{c}"' for c in LEGACY_COLUMNS)
        cursor = self._conn.execute(f'SELECT {columns} FROM "{table}"')
        try:
            while rows := cursor.fetchmany(size):
                yield rows
        finally:
            cursor.close()


@dataclass(slots=True)
class LegacyReport:
    read: int = 0
    imported: int = 0
    already_present: int = 0
    # (table, id or None, reason)
    bad: list[tuple[str, str | None, str]] = field(default_factory=list)


_DONE = object()


async def import_legacy(
    log: EventLogger,
    source: LegacySource,
    *,
    on_bad_row: Callable[[str, str | None, str], None],
    on_progress: Callable[[LegacyReport], None],
    batch_rows: int = LEGACY_BATCH_ROWS,
) -> LegacyReport:
    """Convert and insert every row of the legacy tables, a batch per transaction."""
    report = LegacyReport()
    for table in source.tables:
        batches = source.batches(table, batch_rows)
        try:
            while True:
                try:
                    rows = await asyncio.to_thread(next, batches, _DONE)
                except sqlite3.DatabaseError as exc:
                    raise CliError(
                        f"cannot read {source.path} (table {table}) after {report.read} rows: "
                        f"{exc}; {report.imported} new event(s) before it were imported"
                    ) from None
                if rows is _DONE:
                    break
                assert isinstance(rows, list)
                good: list[Row] = []
                for values in rows:
                    report.read += 1
                    try:
                        good.append(convert_legacy_row(values, max_data_bytes=log.max_data_bytes))
                    except BadRow as exc:
                        row_id = None if values[0] is None else _text(values[0])
                        report.bad.append((table, row_id, str(exc)))
                        on_bad_row(table, row_id, str(exc))
                inserted = await insert_rows(log.engine, good)
                report.imported += inserted
                report.already_present += len(good) - inserted
                on_progress(report)
        finally:
            batches.close()
    return report
