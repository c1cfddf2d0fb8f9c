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

import errno
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

__all__ = [
    "EventLogError",
    "FailureKind",
    "InvalidCursorError",
    "InvalidEventError",
    "LoggerClosedError",
    "MissingDriverError",
    "QueueFullError",
    "RevisionError",
    "StorageError",
    "as_storage_error",
    "error_chain",
    "failure_kind",
    "plain_reason",
    "recognise_error_numbers",
    "recognise_lost_connections",
    "rolled_back",
    "transient",
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


# -- what a driver failure means, in plain words ----------------------------------------------
#
# A driver reports the same few events in many shapes (asyncpg alone has four
# for "the connection is gone", one of them a protocol state machine's
# complaint). Callers need to know which event it was: the writer answers a
# whole batch at once when the failure is not one submission's fault, a
# follower retries a transient one, and every message says what happened.

FailureKind = Literal["lost", "unreachable", "timeout", "lock", "other"]

# Driver package -> whether an exception of that package means the connection is
# gone. A backend registers its drivers' checks when it is imported, which is
# before any of their exceptions can reach event-log.
_LOST_CHECKS: dict[str, Callable[[BaseException], bool]] = {}

# SQLSTATEs (PostgreSQL's, and the standard's) by what they mean here.
_LOST_STATES = frozenset({"57P01", "57P02"})  # admin_shutdown, crash_shutdown
_UNREACHABLE_STATES = frozenset({"57P03", "08001", "08004"})  # cannot connect now, refused
_LOCK_STATES = {
    "55P03": "a lock it needed was not granted within the server's lock_timeout",
    "40P01": "the database found a deadlock and aborted the transaction",
    "40001": "the transaction conflicted with a concurrent one (serialization failure)",
}
# MySQL/MariaDB error numbers (the driver's exceptions carry them as args[0]).
_MYSQL_LOST = frozenset({2006, 2013, 2055})
_MYSQL_LOCK = {
    1205: "a lock wait ran past the server's innodb_lock_wait_timeout",
    1213: "the database found a deadlock and aborted the transaction",
}
_MYSQL_TIMEOUT = frozenset({1969, 3024})
_LOST_ERRORS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError)
_UNREACHABLE_ERRORS = (ConnectionRefusedError, socket.gaierror)
# How psycopg's failures to connect begin, and the words that say no server answered.
_CONNECT_FAILED = ("connection failed:", "failed to resolve host")
_UNREACHABLE_WORDS = (
    "connection refused",
    "resolve host",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "the database system is starting up",
    "the database system is shutting down",
)
_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
)


def recognise_lost_connections(package: str, check: Callable[[BaseException], bool]) -> None:
    """Have ``check`` tell whether an exception raised by driver ``package`` (its top-level
    module, ``"asyncpg"``) means the connection itself was lost."""
    _LOST_CHECKS[package] = check


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``orig``, and each ``__cause__``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def recognise_error_numbers(package: str) -> None:
    """Read the MySQL/MariaDB error number that driver ``package``'s exceptions carry as
    their first argument (a backend registers its driver when it is imported)."""
    _NUMBERED_PACKAGES.add(package)


_NUMBERED_PACKAGES: set[str] = set()


def _mysql_code(exc: BaseException) -> int | None:
    package = type(exc).__module__.partition(".")[0]
    if package in _NUMBERED_PACKAGES and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


@dataclass(frozen=True, slots=True)
class _Failure:
    kind: FailureKind
    words: str
    # The server refused the statement, so its transaction was rolled back: nothing of
    # a write was stored (as opposed to a lost connection, whose commit may have happened).
    rolled_back: bool = False


_LOST = _Failure("lost", "the connection to the database was lost")


def _unreachable(exc: BaseException) -> _Failure:
    return _Failure(
        "unreachable", f"the database server could not be reached ({_innermost_message(exc)})"
    )


def _classify_link(link: BaseException) -> _Failure | None:
    """What one exception of a chain says happened, when it says anything we know."""
    text = str(link)
    if text.startswith(_CONNECT_FAILED):  # psycopg could not connect: say why
        if any(words in text.lower() for words in _UNREACHABLE_WORDS):
            return _unreachable(link)
        return _Failure("other", _innermost_message(link))  # a role that does not exist...
    check = _LOST_CHECKS.get(type(link).__module__.partition(".")[0])
    if isinstance(link, _UNREACHABLE_ERRORS) or (
        isinstance(link, OSError)
        and (link.errno in _UNREACHABLE_ERRNOS or "Connect call failed" in str(link))
    ):
        return _unreachable(link)
    if isinstance(link, _LOST_ERRORS) or (check is not None and check(link)):
        return _LOST
    if type(link) is TimeoutError:  # a driver's own time limit (connecting, a command)
        return _Failure("timeout", "the database did not answer in time")
    state = _sqlstate(link)
    if state is not None:
        if state in _UNREACHABLE_STATES:
            return _unreachable(link)
        if state.startswith("08") or state in _LOST_STATES:
            return _LOST
        if state == "57014":
            if "statement timeout" in str(link):
                words = "the statement ran past the server's statement_timeout and was cancelled"
            else:
                words = "the database cancelled the statement"
            return _Failure("timeout", words, rolled_back=True)
        if state in _LOCK_STATES:
            return _Failure("lock", _LOCK_STATES[state], rolled_back=True)
    code = _mysql_code(link)
    if code is not None:
        if code in _MYSQL_LOST:
            return _LOST
        if code in _MYSQL_TIMEOUT:
            words = "the statement ran past the server's max_statement_time and was cancelled"
            return _Failure("timeout", words, rolled_back=True)
        if code in _MYSQL_LOCK:
            return _Failure("lock", _MYSQL_LOCK[code], rolled_back=True)
    if type(link).__module__ == "sqlite3" and "is locked" in text:
        words = "the database is locked by another connection (the busy timeout ran out)"
        return _Failure("lock", words, rolled_back=True)
    return None


def _classify(exc: BaseException) -> _Failure:
    links = list(error_chain(exc))
    for link in links:
        found = _classify_link(link)
        if found is not None:
            return found
    # SQLAlchemy found the connection unusable (its dialect's own test, or a backend's).
    if any(isinstance(link, DBAPIError) and link.connection_invalidated for link in links):
        return _LOST
    return _Failure("other", _own_message(links))


def _own_message(links: list[BaseException]) -> str:
    """The first message in the chain that is not SQLAlchemy's wrapping: the driver's
    own words for a failed statement, or the context a caller added around a failure
    (a migration naming the row it could not convert)."""
    for link in links:
        if not type(link).__module__.startswith("sqlalchemy"):
            return _one_line(link)
    return _one_line(links[-1])


def failure_kind(exc: BaseException) -> FailureKind:
    """What kind of failure ``exc`` is.

    - ``lost``: the connection died (killed, reset, the server went away);
    - ``unreachable``: no connection could be made;
    - ``timeout``: the statement ran out of time (the server's ``statement_timeout``);
    - ``lock``: a lock was not granted in time, or a deadlock or conflict aborted it;
    - ``other``: the statement itself failed (bad data, a missing table...).
    """
    return _classify(exc).kind


def transient(exc: BaseException) -> bool:
    """Whether the same work may well succeed if tried again a little later."""
    return failure_kind(exc) != "other"


def rolled_back(exc: BaseException) -> bool:
    """Whether the server refused the statement, so a write it carried stored nothing.

    False where that is unknown: a connection lost during a commit may have
    committed it.
    """
    failure = _classify(exc)
    return failure.rolled_back or failure.kind == "other"


def _innermost_message(exc: BaseException) -> str:
    """The message of the driver error at the bottom of ``exc``, on one line."""
    root = exc
    for link in error_chain(exc):
        root = link
    return _one_line(root)


def _one_line(root: BaseException) -> str:
    text = str(root).strip()
    if not text:
        return type(root).__name__
    first = text.splitlines()[0].strip()
    return first if len(first) <= 300 else first[:297] + "..."


def plain_reason(exc: BaseException) -> str:
    """What happened, in words: the kind of failure, or the driver's own message (one line)
    for a statement that failed on its own. A driver's internal wording (a protocol
    state machine's) never shows; it stays in ``__cause__``."""
    return _classify(exc).words


@contextmanager
def translate_storage_errors(action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy / driver failures as :class:`StorageError`, saying in words
    what happened (the driver's exception is ``__cause__``).

    ``OSError`` is included because aiosqlite and asyncpg surface I/O and
    connection failures (disk full, connection refused) that way.
    """
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"{action} failed: {plain_reason(exc)}") from exc


def as_storage_error(action: str, exc: BaseException, outcome: str | None = None) -> StorageError:
    """``exc`` as a :class:`StorageError` whose ``__cause__`` is the original failure;
    ``outcome`` (what became of the work) is added to the message."""
    if isinstance(exc, StorageError):
        return exc
    message = f"{action} failed: {plain_reason(exc)}"
    error = StorageError(f"{message}; {outcome}" if outcome else message)
    error.__cause__ = exc
    return error
