"""The exception tree, and the one place driver errors are translated into it.

EventLogError
├── InvalidEventError   (also ValueError)  bad input; nothing was written
├── InvalidCursorError  (also ValueError)  a cursor this logger did not issue
├── StorageError                           the database failed; __cause__ is the driver error
├── LoggerClosedError                      the logger was closed
├── QueueFullError                         emit() on the loop found the write queue full
├── MissingDriverError  (also ImportError) the URL's database driver is not installed
└── RevisionError       (also ValueError)  a schema revision this event-log does not know
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

__all__ = [
    "EventLogError",
    "InvalidCursorError",
    "InvalidEventError",
    "LoggerClosedError",
    "MissingDriverError",
    "QueueFullError",
    "RevisionError",
    "StorageError",
    "as_storage_error",
    "translate_storage_errors",
]


class EventLogError(Exception):
    """Base class of every error event-log raises on purpose."""


class InvalidEventError(EventLogError, ValueError):
    """An event failed validation; nothing was written."""


class InvalidCursorError(EventLogError, ValueError):
    """A cursor was malformed, tampered with, or issued for another direction."""


class StorageError(EventLogError):
    """The database failed; the driver's exception is ``__cause__``."""


class LoggerClosedError(EventLogError):
    """The logger was closed; only ``close()`` may still be called."""


class QueueFullError(EventLogError):
    """``emit()`` on the event loop's thread found ``max_queued`` events still waiting.

    Nothing was queued. The loop's thread cannot wait for the writer (the
    writer runs on that loop), so the caller must: ``await log.flush()``, or
    use ``await log.log_event(...)``, which waits for room by itself.
    """


class MissingDriverError(EventLogError, ImportError):
    """The database URL names a driver that is not installed; the message names the
    extra that installs it (``pip install 'event-log[postgresql]'``)."""


class RevisionError(EventLogError, ValueError):
    """A revision that does not exist, or a database not at the revision an action needs
    (one upgraded by a newer event-log, say)."""


@contextmanager
def translate_storage_errors(action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy / driver failures as :class:`StorageError`.

    ``OSError`` is included because aiosqlite and asyncpg surface I/O and
    connection failures (disk full, connection refused) that way.
    """
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"{action} failed: {exc}") from exc


def as_storage_error(action: str, exc: BaseException) -> StorageError:
    """``exc`` as a :class:`StorageError` whose ``__cause__`` is the original failure."""
    if isinstance(exc, StorageError):
        return exc
    error = StorageError(f"{action} failed: {exc}")
    error.__cause__ = exc
    return error
