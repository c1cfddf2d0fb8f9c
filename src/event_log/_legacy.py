"""Importing a database of the original system: :class:`LegacyDatabase`.

The original system wrote SQLite files in one of two layouts, both with the
columns ``id, event_type, source, task_id, agent_id, data, timestamp`` as
``TEXT``:

- table ``event_log`` (the original design): ``data`` is JSON text or NULL;
- table ``events`` (the later ``data/events.db``): ``task_id`` and
  ``agent_id`` default to ``''`` and ``data`` to ``'{}'``.

Each row is converted as revision 0001's adoption of the original table
converts it (``_adopt``: ISO 8601 timestamps with or without a fraction, naive
taken as UTC, offsets turned into UTC; data kept as a JSON object), with ``''``
task and agent ids read as none and ``{}`` or ``null`` data as no data, then
imported by :meth:`EventLogger.import_events`, which validates it like a new
event, keeps its id and skips ids already stored (importing twice adds
nothing). A row that cannot be carried over is reported with its id and
skipped, never dropped silently.

The file is read with the standard library's ``sqlite3``, read-only, in
batches on a worker thread (``asyncio.to_thread``), so the event loop and the
writer never wait for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._adopt import normalize_data, normalize_timestamp
from ._errors import EventLogError, InvalidEventError

if TYPE_CHECKING:
    from ._logger import EventLogger

__all__ = [
    "LEGACY_COLUMNS",
    "LEGACY_TABLES",
    "ImportSourceError",
    "LegacyDatabase",
    "LegacyImport",
    "legacy_event",
]

LEGACY_TABLES = ("event_log", "events")
LEGACY_COLUMNS = ("id", "event_type", "source", "task_id", "agent_id", "data", "timestamp")
LEGACY_BATCH_ROWS = 1000
_NO_DATA = ("", "{}", "null")


class ImportSourceError(EventLogError):
    """What an import reads from cannot be read (missing, not a database, damaged).

    The message is one line naming the file; events imported before the
    damage was found stay imported (the message says how many).
    """


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def legacy_event(values: Sequence[Any]) -> dict[str, Any]:
    """One row of the original system (``LEGACY_COLUMNS`` in order) as the fields
    :meth:`EventLogger.import_events` takes; :class:`InvalidEventError` when its id,
    timestamp or data cannot be carried over (the rest is checked on import)."""
    row_id, event_type, source, task_id, agent_id, data, timestamp = values
    if row_id is None or _text(row_id).strip() == "":
        raise InvalidEventError("id is missing")
    if timestamp is None:
        raise InvalidEventError("timestamp is NULL")
    try:
        when = normalize_timestamp(_text(timestamp))
    except ValueError:
        raise InvalidEventError(f"timestamp {timestamp!r} is not an ISO 8601 date-time") from None
    plain: dict[str, Any] | None = None
    if data is not None and not (isinstance(data, str) and data.strip() in _NO_DATA):
        try:
            text = normalize_data(data if isinstance(data, str | bytes) else str(data))
        except (ValueError, TypeError):
            raise InvalidEventError(f"data is not JSON: {data!r:.80}") from None
        if text is not None:
            plain = json.loads(text) or None  # {} is no data
    return {
        "id": _text(row_id),
        "event_type": None if event_type is None else _text(event_type),
        "source": None if source is None else _text(source),
        "task_id": None if task_id in (None, "") else _text(task_id),
        "agent_id": None if agent_id in (None, "") else _text(agent_id),
        "data": plain,
        "timestamp": when,
    }


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    # A table name from LEGACY_TABLES only: never from the file.
    return {str(info[1]).lower() for info in conn.execute(f'PRAGMA table_info("{table}")')}


@dataclass(frozen=True, slots=True)
class LegacyImport:
    """What :meth:`LegacyDatabase.import_into` did.

    ``read``: rows read; ``imported``: events stored now; ``already_present``:
    rows whose id was already stored; ``invalid``: ``(table, id or None,
    reason)`` for each row left out, in the order read.
    """

    read: int
    imported: int
    already_present: int
    invalid: tuple[tuple[str, str | None, str], ...] = ()


_DONE = object()


class LegacyDatabase:
    """The original system's tables in one SQLite file, opened read-only.

    ``with LegacyDatabase(path) as source:`` opens it and finds its tables
    (:class:`ImportSourceError` when the file is missing, is no SQLite
    database, or has neither table); ``tables`` and ``total`` (rows in them)
    are then known, and :meth:`import_into` imports every row.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.tables: list[str] = []
        self.total = 0
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> LegacyDatabase:
        file = Path(self.path)
        if not file.is_file():
            raise ImportSourceError(f"cannot read {self.path}: the file does not exist")
        try:
            # Read-only: importing never changes the original database.
            conn = sqlite3.connect(
                f"{file.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ImportSourceError(f"cannot open {self.path}: {exc}") from None
        self._conn = conn
        try:
            names = {
                str(name)
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            wanted = set(LEGACY_COLUMNS)
            self.tables = [t for t in LEGACY_TABLES if t in names and wanted <= _columns(conn, t)]
            if not self.tables:
                raise ImportSourceError(
                    f"{self.path} has no table of the original system: expected 'event_log' "
                    f"or 'events' with the columns {', '.join(LEGACY_COLUMNS)}"
                )
            self.total = sum(
                int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in self.tables
            )
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ImportSourceError(f"cannot read {self.path}: {exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def batches(self, table: str, size: int) -> Generator[list[tuple[Any, ...]], None, None]:
        """The rows of ``table`` (``LEGACY_COLUMNS`` in order), ``size`` at a time. Each
        ``next()`` is blocking: call it on a worker thread."""
        if self._conn is None:
            raise ValueError("the legacy database is not open: use it in a with block")
        if table not in self.tables:
            raise ValueError(f"{table!r} is not one of its tables {self.tables}")
        columns = ", ".join(f'"{c}"' for c in LEGACY_COLUMNS)
        cursor = self._conn.execute(f'SELECT {columns} FROM "{table}"')
        try:
            while rows := cursor.fetchmany(size):
                yield rows
        finally:
            cursor.close()

    async def import_into(
        self,
        log: EventLogger,
        *,
        batch_rows: int = LEGACY_BATCH_ROWS,
        on_invalid: Callable[[str, str | None, str], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> LegacyImport:
        """Import every row of the tables into ``log``, one transaction per ``batch_rows``.

        ``on_invalid(table, id or None, reason)`` is called for each row left
        out, as it is found; ``on_progress(rows read)`` after each batch. A
        file that turns out damaged midway raises :class:`ImportSourceError`
        (the batches before it stay imported).
        """
        if batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        read = imported = present = 0
        invalid: list[tuple[str, str | None, str]] = []
        for table in self.tables:
            batches = self.batches(table, batch_rows)
            try:
                while True:
                    try:
                        rows = await asyncio.to_thread(next, batches, _DONE)
                    except sqlite3.DatabaseError as exc:
                        raise ImportSourceError(
                            f"cannot read {self.path} (table {table}) after {read} rows: "
                            f"{exc}; {imported} new event(s) before it were imported"
                        ) from None
                    if rows is _DONE:
                        break
                    assert isinstance(rows, list)
                    bad: dict[int, str] = {}
                    items: list[tuple[int, dict[str, Any]]] = []
                    for position, values in enumerate(rows):
                        try:
                            items.append((position, legacy_event(values)))
                        except InvalidEventError as exc:
                            bad[position] = str(exc)
                    result = await log.import_events([i for _, i in items], skip_invalid=True)
                    for index, reason in result.invalid:
                        bad[items[index][0]] = reason
                    for position in sorted(bad):
                        values = rows[position]
                        row_id = None if values[0] is None else _text(values[0])
                        invalid.append((table, row_id, bad[position]))
                        if on_invalid is not None:
                            on_invalid(table, row_id, bad[position])
                    read += len(rows)
                    imported += result.imported
                    present += result.already_present
                    if on_progress is not None:
                        on_progress(read)
            finally:
                batches.close()
        return LegacyImport(read, imported, present, tuple(invalid))
