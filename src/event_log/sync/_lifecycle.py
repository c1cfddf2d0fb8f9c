"""Loggers still open at exit or at a fork: flushed before the program's threads are
joined, closed at exit, and dropped (never used) in a forked child."""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 - its exit hook must be registered before ours
import logging
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._logger import SyncEventLogger

__all__ = ["close_at_exit", "forget", "remember"]

_log = logging.getLogger("event_log")

# Held strongly: a logger nobody closes is closed (and flushed) at exit all the same.
_open: set[SyncEventLogger] = set()
_open_lock = threading.Lock()
# A forked child's copies of its parent's loggers: kept, never used or collected, since
# collecting them would finalise the parent's connections from the child.
_inherited: list[SyncEventLogger] = []


def remember(logger: SyncEventLogger) -> None:
    with _open_lock:
        _open.add(logger)


def forget(logger: SyncEventLogger) -> None:
    with _open_lock:
        _open.discard(logger)


def _flush_all_before_exit() -> None:
    """Commit what every open logger holds while the interpreter still runs all of it.

    It runs as threading's exit hooks do, before ``concurrent.futures`` refuses new
    work to its thread pools (an SQLite file's writer runs on one); the ``atexit``
    hook then closes the loggers, after the program's own threads have ended.
    """
    for logger in _open_here():
        try:
            logger.flush()
        except Exception as exc:  # one line on the logger; exit goes on
            _log.error("event_log.sync: flushing a logger at exit failed: %s", exc)


def _close_all_at_exit() -> None:
    for logger in _open_here():
        close_at_exit(logger)


def close_at_exit(logger: SyncEventLogger) -> None:
    """Close ``logger`` as the interpreter exits; a failure that lost no event (a pool
    that no longer takes work releasing its connection, say) is only a debug line."""
    try:
        logger.close()
    except Exception as exc:
        stats = logger._logger.stats
        if stats.queued or stats.failed:  # each failed write was logged when it failed
            _log.error("event_log.sync: closing a logger at exit failed: %s", exc)
        else:
            _log.debug("event_log.sync: closing a logger at exit: %s", exc, exc_info=True)


def _open_here() -> list[SyncEventLogger]:
    with _open_lock:
        return [logger for logger in _open if logger._pid == os.getpid()]


def _after_fork_in_child() -> None:
    global _open_lock
    _inherited.extend(_open)
    _open.clear()
    _open_lock = threading.Lock()  # a parent's thread may have held it at the fork


atexit.register(_close_all_at_exit)
# Registered after concurrent.futures' own hook (imported above for that), so it runs first.
_register_before_threads_end = getattr(threading, "_register_atexit", None)
if _register_before_threads_end is not None:
    _register_before_threads_end(_flush_all_before_exit)
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
