"""EventLogger: the async repository coordinators await to log, query and prune events.

It composes the other modules: validation (``_models``), the group-commit
writer (``_writer``), statements and cursors (``_queries``) and the engine
(``_engine``, ``_database``). It holds no SQL of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self, Unpack

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _retention
from ._database import Database
from ._errors import InvalidEventError, LoggerClosedError, translate_storage_errors
from ._filters import EventFilter, FilterKeywords, filter_from
from ._follow import DEFAULT_POLL_INTERVAL, Follower, FollowerRegistry, follow_start
from ._importing import ImportResult
from ._importing import import_events as _import_events
from ._models import (
    DEFAULT_MAX_DATA_BYTES,
    Event,
    HistogramBucket,
    NewEvent,
    Page,
    prepare_event,
    prepared_chunks,
)
from ._opening import Opening
from ._pruning import PrunePreview
from ._pruning import preview_prune as _preview_prune
from ._pruning import prune_as_previewed as _prune_as_previewed
from ._queries import (
    HISTOGRAM_GROUPS,
    MAX_PAGE_SIZE,
    BucketGrid,
    CursorCodec,
    HistogramGroup,
    check_limit,
    check_minutes,
    count_statement,
    event_by_id_statement,
    histogram_statements,
    list_statement,
    minutes_ago,
    row_to_event,
    sort_summary,
    storable_text,
    summary_statement,
)
from ._redact import Redactor
from ._retention import (
    RetentionPolicy,
    delete_expired,
    reclaim_freed_pages,
    retention_rules,
)
from ._upkeep import Upkeep
from ._writer import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_QUEUED, Writer, WriterStats

__all__ = ["DEFAULT_PARTITION_CHECK_MINUTES", "DEFAULT_PRUNE_BATCH_SIZE", "EventLogger"]

_log = logging.getLogger("event_log")

# Rows deleted per prune transaction: small enough that a batch holds SQLite's
# write lock for a few milliseconds, so concurrent log_event calls barely wait.
DEFAULT_PRUNE_BATCH_SIZE = 1_000
# How often a logger on a partitioned PostgreSQL table checks that the
# partitions ahead exist (also once when it starts).
DEFAULT_PARTITION_CHECK_MINUTES = 60.0


class EventLogger:
    """Log, query and prune swarm events; safe to share between asyncio tasks.

    ``EventLogger(engine)`` uses a caller's engine (whose schema must already
    exist) and never disposes it; ``EventLogger.open(url)`` makes and owns one.

    Keywords (``open()`` passes them on):

    - ``max_data_bytes``: largest ``data`` accepted, as compact UTF-8 JSON.
    - ``max_batch_rows``: most rows one write transaction carries.
    - ``max_queued``: most events waiting to be written (see ``emit``).
    - ``prune_batch_size``: rows deleted per prune transaction.
    - ``cursor_key``: HMAC key of the keyset cursors (random per logger unless
      given; share it to use cursors across processes).
    - ``poll_interval``: seconds between ``follow()``'s polls for events of
      other loggers and processes.
    - ``redact``: mask the values of secret-looking keys in ``data`` before
      storage (``True``, the default: password, token, secret, api key,
      authorization, cookie, private key, credentials; an iterable of names
      replaces that list; ``False`` turns it off). See ``_redact``.
    - ``retention``: a ``RetentionPolicy`` with ``every_minutes`` makes the
      logger prune by it in the background, at once and then that often
      (the logger must be made inside a running event loop, as ``open()`` does).
    - ``partitions_ahead``, ``partition_check_minutes``: on PostgreSQL with a
      partitioned ``event_log`` (``upgrade(url, partition="day")``), the logger
      keeps the current period's partition and ``partitions_ahead`` more
      (default 7 days or 2 months) in place: at start and every
      ``partition_check_minutes`` (default 60), in the background. Rows no
      partition covers go to the DEFAULT partition, so a write never fails
      for want of one. See ``ensure_partitions``.
    - ``read_only``: a reader's logger. It runs nothing in the background
      (no partition upkeep, no scheduled prune). ``open(url, read_only=True)``
      also opens the database so that the database itself refuses writes (an
      SQLite file with ``mode=ro``, a read-only session on a server), never
      creates or migrates it, and fails with :class:`StorageError` when an
      SQLite file does not exist. Writes then fail with :class:`StorageError`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_queued: int = DEFAULT_MAX_QUEUED,
        prune_batch_size: int = DEFAULT_PRUNE_BATCH_SIZE,
        cursor_key: bytes | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        redact: bool | Iterable[str] = True,
        retention: RetentionPolicy | None = None,
        partitions_ahead: int | None = None,
        partition_check_minutes: float = DEFAULT_PARTITION_CHECK_MINUTES,
        read_only: bool = False,
    ) -> None:
        if not poll_interval > 0:
            raise ValueError("poll_interval must be > 0 seconds")
        if partitions_ahead is not None and partitions_ahead < 0:
            raise ValueError("partitions_ahead must be >= 0")
        if not partition_check_minutes > 0:
            raise ValueError("partition_check_minutes must be > 0")
        if min(max_data_bytes, max_batch_rows, max_queued, prune_batch_size) < 1:
            raise ValueError(
                "max_data_bytes, max_batch_rows, max_queued and prune_batch_size must be >= 1"
            )
        self._db = Database(engine)
        self._writer = Writer(
            self._db.backend.make_sink(self._db),
            max_batch_rows=max_batch_rows,
            max_queued=max_queued,
        )
        self._max_data_bytes = max_data_bytes
        self._prune_batch_size = prune_batch_size
        self._cursors = CursorCodec(cursor_key if cursor_key is not None else os.urandom(32))
        self._owned_engine: AsyncEngine | None = None
        self._closed = False
        # Secret keys masked in data before storage: on by default (see _redact).
        self._redactor = Redactor.from_setting(redact)
        # One event validated with this logger's size limit and redaction.
        self._prepare = functools.partial(
            prepare_event, max_data_bytes=max_data_bytes, redactor=self._redactor
        )
        self._followers = FollowerRegistry(self._db)
        self._poll_interval = poll_interval
        # Bound now when made inside a loop, so emit() from threads works at once;
        # made outside a loop, it is bound on first use.
        with contextlib.suppress(RuntimeError):
            self._writer.bind()
        self._partitions_ahead = partitions_ahead
        self._upkeep = Upkeep()
        scheduled = retention is not None and retention.every_minutes is not None
        if read_only and scheduled:
            raise ValueError("a read-only logger cannot prune on a schedule")
        self._read_only = read_only
        if self._db.backend.partitions is not None and not read_only:
            self._upkeep.keep_partitions(self.ensure_partitions, partition_check_minutes)
        if retention is not None and retention.every_minutes is not None:
            self._upkeep.prune_on_schedule(self.apply_retention, retention)

    @classmethod
    def open(
        cls,
        url: str | URL | None = None,
        *,
        migrate: bool = True,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        **options: Any,
    ) -> Opening:
        """Open a logger that owns its engine: ``async with EventLogger.open(url) as log``.

        ``url`` falls back to ``$EVENT_LOG_URL``, then :data:`DEFAULT_URL`. With
        ``migrate`` the schema is brought to the newest revision first. Leaving
        the ``async with`` flushes every pending write and disposes the engine.
        The database is connected to before anything else, so an unreachable
        one fails here with one :class:`StorageError`. ``read_only=True`` opens
        it for reading only, and never migrates (see the class's keywords).
        ``await EventLogger.open(...)`` also works; then call ``close()`` yourself.
        """
        return Opening(cls, url, migrate, dict(options, max_data_bytes=max_data_bytes))

    @property
    def engine(self) -> AsyncEngine:
        return self._db.engine

    @property
    def read_only(self) -> bool:
        """Whether this is a reader's logger (see the ``read_only`` keyword)."""
        return self._read_only

    @property
    def max_data_bytes(self) -> int:
        """The largest ``data`` this logger accepts, in bytes of compact UTF-8 JSON."""
        return self._max_data_bytes

    @property
    def retention_failures(self) -> int:
        """Scheduled prunes that failed (each is also logged, and tried again)."""
        return self._upkeep.retention_failures

    @property
    def stats(self) -> WriterStats:
        """Events written, failed and still queued by this logger."""
        return self._writer.stats

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush pending writes, stop the writer, dispose an owned engine. Idempotent."""
        if self._closed:
            await self._writer.close()
            return
        self._closed = True
        await self._upkeep.stop()
        try:
            await self._writer.close()
            await self._followers.close()
        finally:
            if self._owned_engine is not None:
                engine, self._owned_engine = self._owned_engine, None
                await engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise LoggerClosedError("the logger is closed")

    # -- writing ------------------------------------------------------------------------

    async def log_event(
        self,
        event_type: str,
        source: str,
        *,
        task_id: str | None = None,
        agent_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> Event:
        """Validate, write and return one event once its transaction has committed."""
        self._check_open()
        prepared = self._prepare(event_type, source, task_id, agent_id, data, timestamp)
        await self._writer.write((prepared.row,))
        return prepared.event

    async def log_events(self, events: Iterable[NewEvent | Mapping[str, Any]]) -> list[Event]:
        """Validate every event, then commit them all in one transaction, or none.

        Any invalid event raises :class:`InvalidEventError` and nothing of the
        batch is stored. On PostgreSQL a batch of more than 255 events is
        validated in chunks inside its transaction (the server stores the
        first while the rest are validated); the invalid event rolls it back.
        """
        self._check_open()
        if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
            raise InvalidEventError(
                f"events must be an iterable of NewEvent or mappings, not {type(events).__name__}"
            )
        items = events if isinstance(events, list | tuple) else list(events)
        made: list[Event] = []
        if items:
            chunks = prepared_chunks(
                items, max_data_bytes=self._max_data_bytes, redactor=self._redactor, made=made
            )
            await self._writer.write_chunks(len(items), chunks)
        return made

    def emit(
        self,
        event_type: str,
        source: str,
        *,
        task_id: str | None = None,
        agent_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        block: bool = True,
    ) -> Event:
        """Validate now, queue the write, return at once; callable from any thread.

        ``await flush()`` waits for it; a failed write is logged on the ``event_log``
        logger and counted in ``stats.failed``. The queue holds at most
        ``max_queued`` events: beyond that, a call from another thread blocks
        until there is room (or, with ``block=False``, raises), and a call on
        the event loop's own thread raises ``QueueFullError`` (an
        ``EventLogError``); nothing is queued when it raises.
        """
        if self._closed:
            raise LoggerClosedError("the logger is closed")
        prepared = self._prepare(event_type, source, task_id, agent_id, data, timestamp)
        self._writer.emit(prepared.row, block=block)
        return prepared.event

    async def flush(self) -> None:
        """Wait until every event queued so far (``emit`` included) is committed or failed."""
        self._check_open()
        await self._writer.flush()

    async def import_events(
        self, events: Iterable[Event | Mapping[str, Any]], *, skip_invalid: bool = False
    ) -> ImportResult:
        """Write events as they were, keeping their ids and timestamps (see ``_importing``).

        Each item is an :class:`Event` or a mapping of its fields (``id``,
        ``event_type``, ``source`` and ``timestamp`` required; the timestamp an
        aware datetime or ISO 8601 text with an offset), validated as
        ``log_event`` validates one. Ids already stored, or repeated here, are
        skipped, so importing twice adds nothing. The new events are committed
        in one transaction, queued behind this logger's pending writes. An
        invalid event raises :class:`InvalidEventError` naming its position and
        nothing is written; with ``skip_invalid`` it is left out and reported in
        the result's ``invalid`` instead.
        """
        self._check_open()
        return await _import_events(
            self._db,
            self._writer,
            events,
            max_data_bytes=self._max_data_bytes,
            redactor=self._redactor,
            skip_invalid=skip_invalid,
        )

    # -- reading ------------------------------------------------------------------------

    async def _fetch_events(self, stmt: Any) -> list[Event]:
        self._check_open()
        with translate_storage_errors("reading events"):
            return [row_to_event(row) for row in await self._db.rows(stmt)]

    async def _scalar(self, stmt: Any) -> Any:
        self._check_open()
        with translate_storage_errors("reading events"):
            return (await self._db.rows(stmt))[0][0]

    async def get_event(self, event_id: str) -> Event | None:
        """The event with this id, or None (also for an id that is not a well-formed string)."""
        self._check_open()
        if not isinstance(event_id, str) or len(event_id) > 64 or not storable_text(event_id):
            return None
        events = await self._fetch_events(event_by_id_statement(event_id))
        return events[0] if events else None

    async def list_events(
        self,
        *,
        filter: EventFilter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = True,
        **filters: Unpack[FilterKeywords],
    ) -> Page:
        """One page of matching events in ``(timestamp, id)`` order; follow ``next_cursor``.

        The events are those ``filter`` matches, or the :class:`EventFilter` the
        keywords make (``event_type``, ``source``, ``task_id``, ``agent_id``,
        ``since``, ``until``, ``exclude_event_type``, ``exclude_source``,
        ``data_contains``, ``data_where``); giving both is a ``ValueError``.
        """
        self._check_open()
        limit = check_limit(limit, maximum=MAX_PAGE_SIZE)
        flt = filter_from(filter, filters)
        after = None if cursor is None else self._cursors.decode(cursor, newest_first=newest_first)
        stmt = list_statement(
            flt, self._db.backend, newest_first=newest_first, after=after, limit=limit + 1
        )
        events = await self._fetch_events(stmt)
        next_cursor = None
        if len(events) > limit:
            del events[limit:]
            last = events[-1]
            next_cursor = self._cursors.encode((last.timestamp, last.id), newest_first=newest_first)
        return Page(events=events, next_cursor=next_cursor)

    async def count_events(
        self, *, filter: EventFilter | None = None, **filters: Unpack[FilterKeywords]
    ) -> int:
        """How many events match ``filter`` (or the filter keywords of :meth:`list_events`)."""
        self._check_open()
        flt = filter_from(filter, filters)
        return int(await self._scalar(count_statement(flt, self._db.backend)))

    async def get_task_events(self, task_id: str) -> list[Event]:
        """Every event of one task, oldest first: its full timeline, uncapped."""
        self._check_open()
        flt = filter_from(None, {"task_id": task_id})
        return await self._fetch_events(list_statement(flt, self._db.backend, newest_first=False))

    async def get_agent_events(self, agent_id: str, *, limit: int = 100) -> list[Event]:
        """One agent's newest events, newest first."""
        self._check_open()
        flt = filter_from(None, {"agent_id": agent_id})
        stmt = list_statement(flt, self._db.backend, newest_first=True, limit=check_limit(limit))
        return await self._fetch_events(stmt)

    async def get_recent_events(self, minutes: float = 60, *, limit: int = 1000) -> list[Event]:
        """Events of the last ``minutes`` minutes, newest first."""
        self._check_open()
        since = minutes_ago(check_minutes("minutes", minutes))
        flt = filter_from(None, {"since": since})
        stmt = list_statement(flt, self._db.backend, newest_first=True, limit=check_limit(limit))
        return await self._fetch_events(stmt)

    async def get_event_summary(self, minutes: float = 60) -> dict[str, int]:
        """Event type to count over the last ``minutes`` minutes, largest count first."""
        self._check_open()
        since = minutes_ago(check_minutes("minutes", minutes))
        with translate_storage_errors("summarising events"):
            rows = await self._db.rows(summary_statement(since, self._db.backend))
        return sort_summary(rows)

    async def get_event_histogram(
        self,
        *,
        every: timedelta,
        by: HistogramGroup | None = None,
        filter: EventFilter | None = None,
        **filters: Unpack[FilterKeywords],
    ) -> list[HistogramBucket]:
        """Counts per time bucket of ``every`` from ``since`` to ``until`` (default now).

        ``since`` is required, as a keyword or in ``filter``; the other filters
        narrow what is counted. Buckets are aligned to the Unix epoch, every
        bucket is present (empty ones as zero), at most 1,000 of them, else
        ``ValueError``. ``by`` ("event_type", "source", "agent_id") splits each
        count by that column (events without an agent count under ""). Counted
        in SQL.
        """
        self._check_open()
        if by is not None and by not in HISTOGRAM_GROUPS:
            raise ValueError(f"by must be one of {HISTOGRAM_GROUPS} or None, not {by!r}")
        flt = filter_from(filter, filters)
        if flt.since is None:
            raise ValueError("since is required")
        grid = BucketGrid.covering(flt.since, flt.until or datetime.now(UTC), every)
        pooled = not self._db.shared_connection
        statements = histogram_statements(flt, self._db.backend, grid, by, pooled=pooled)
        with translate_storage_errors("counting events"):
            results = await asyncio.gather(*(self._db.rows(stmt) for stmt in statements))
        return grid.buckets(itertools.chain.from_iterable(results), grouped=by is not None)

    def follow(
        self,
        *,
        filter: EventFilter | None = None,
        cursor: str | None = None,
        **filters: Unpack[FilterKeywords],
    ) -> Follower:
        """Matching events as they commit, oldest first, each exactly once.

        The filter is ``filter`` or the keywords of :meth:`list_events`.
        Iteration begins at the first ``__anext__``. With ``cursor`` (a
        ``next_cursor`` of ``list_events(newest_first=False)`` or an event id)
        the stored matching events after that position come first; with a
        :attr:`Follower.cursor`, it carries on exactly where that follower was.
        Ends after yielding what was committed before ``close()`` returned;
        ``aclose()`` or leaving an ``async with`` stops it earlier.

        Transient database failures (a lost connection, a timeout, a lock) are
        retried for up to 30 s on end without skipping or repeating an event;
        after that, or at once for any other failure, ``__anext__`` raises
        :class:`StorageError`. That ends an ``async for``, but iterating the
        same follower again resumes after the last event it yielded.
        """
        self._check_open()
        flt = filter_from(filter, filters)
        position, event_id, resume = follow_start(
            self._cursors, self._db.backend.commit_order, cursor
        )
        follower = Follower(
            self._db,
            self._writer,
            flt,
            position=position,
            event_id=event_id,
            resume=resume,
            poll_interval=self._poll_interval,
            on_done=self._followers.discard,
            listen=self._followers.listen,
            read=self._followers.reads.rows,
        )
        self._followers.add(follower)
        return follower

    # -- retention ----------------------------------------------------------------------

    async def prune_events(
        self,
        older_than_days: float = 30,
        *,
        overrides: Mapping[str, float] | None = None,
    ) -> int:
        """Delete events older than ``older_than_days`` days in short batches; return the count.

        ``overrides`` keeps some types for another number of days, e.g.
        ``{"tool.*": 7, "system.error": 90}``; the longest match wins (see
        ``_retention``). Each batch is its own transaction, queued behind
        pending writes, so concurrent ``log_event`` callers wait at most one batch.

        On a partitioned PostgreSQL table, every partition whose whole time
        range is older than the earliest cutoff of all the rules is first
        detached and dropped (its rows counted exactly beforehand); the
        batches then delete the rest (the boundary partition, the DEFAULT one).
        """
        self._check_open()
        rules = retention_rules(older_than_days, overrides)
        deleted = await delete_expired(
            self._db, self._writer, rules, batch_size=self._prune_batch_size
        )
        if deleted:
            await self.reclaim_space()
        return deleted

    async def ensure_partitions(self, *, ahead: int | None = None) -> list[str]:
        """Create the partitions of the current period and ``ahead`` more; return the new ones.

        Only for a partitioned PostgreSQL table (elsewhere it returns ``[]``).
        ``ahead`` defaults to the logger's ``partitions_ahead`` (7 days, 2
        months). Rows of a new partition's period that already sit in the
        DEFAULT partition move into it. Loggers and processes doing this at
        once take turns on an advisory lock. The logger calls it by itself.
        """
        self._check_open()
        partitions = self._db.backend.partitions
        if partitions is None:
            return []
        if ahead is not None and ahead < 0:
            raise ValueError("ahead must be >= 0")
        wanted = ahead if ahead is not None else self._partitions_ahead
        with translate_storage_errors("creating partitions"):
            return await partitions.ensure(
                self._db, ahead=wanted, lock_timeout_ms=_retention.PARTITION_LOCK_TIMEOUT_MS
            )

    async def reclaim_space(self) -> int:
        """Hand the pages pruning freed back to the file system; return how many.

        SQLite files made by this version use incremental auto-vacuum: the
        freed pages go back in steps of at most ``RECLAIM_PAGES_PER_STEP``
        pages and about 10 ms, each its own transaction in the writer's queue,
        so writers wait at most one step. Older SQLite files (``PRAGMA
        auto_vacuum = INCREMENTAL; VACUUM`` once switches them) and PostgreSQL
        (``VACUUM`` / autovacuum, or partitions) return 0.
        """
        self._check_open()
        return await reclaim_freed_pages(self._writer)

    async def preview_prune(
        self, older_than_days: float = 30, *, overrides: Mapping[str, float] | None = None
    ) -> list[PrunePreview]:
        """What ``prune_events`` with these arguments would delete now: one
        :class:`PrunePreview` per rule, most specific first, the default last (see
        ``_pruning``). Deletes nothing."""
        self._check_open()
        return await _preview_prune(self, older_than_days, overrides)

    async def prune_as_previewed(
        self,
        preview: Sequence[PrunePreview],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """``prune_events`` with exactly the cutoffs ``preview`` counted (however long ago
        it was made); ``on_progress(deleted so far)`` is called while it runs."""
        self._check_open()
        return await _prune_as_previewed(self, preview, on_progress=on_progress)

    async def apply_retention(self, policy: RetentionPolicy) -> int:
        """``prune_events`` with a policy's days and overrides."""
        return await self.prune_events(policy.older_than_days, overrides=policy.overrides)
