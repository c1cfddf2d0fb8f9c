"""A standard-library ``logging.Handler`` that records warnings and errors as events.

A coordinator logs its system warnings and errors too; most of those are
raised deep inside code that only knows the :mod:`logging` module. Attaching
:class:`EventLogHandler` to a logger turns every record at or above its level
into a ``system.warning`` / ``system.error`` event (``system.info`` below
WARNING when the level is lowered), so a failure shows up in the audit trail,
next to the task it broke, with its traceback.

Three promises, and how they are kept:

- **It never blocks the caller.** It writes through
  ``EventLogger.emit(..., block=False)``, which validates at once, queues the
  row and returns, from any thread; when the logger's write queue is full it
  raises instead of waiting, and the record is counted as dropped (below).
  (From a thread with no running loop it needs a logger made or used inside
  its loop, which ``EventLogger.open()`` is.) It does not hold the handler's
  lock while it emits: ``emit()`` is thread-safe, and the lock would only
  serialise threads for nothing.
- **It never recurses.** The library reports failed background writes on the
  ``event_log`` logger; re-logging those would write an event about a failing
  write through the same failing writer, forever. Records from the
  ``event_log`` hierarchy are therefore never recorded, and a thread-local flag
  ignores any record produced while this handler is itself emitting.
- **It drops nothing silently.** A record whose ``data`` is too large (or not
  storable text) is retried once with the message and traceback cut to fit.
  Any record that still cannot be queued goes to :meth:`logging.Handler.handleError`
  (the standard "a handler failed" path, printed on stderr while
  ``logging.raiseExceptions`` is true) and is counted in :attr:`EventLogHandler.dropped`.
  Once queued, a write that fails in the background is counted in
  ``log.stats.failed`` and reported on the ``event_log`` logger.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from datetime import UTC, datetime
from typing import Any

from ._errors import InvalidEventError
from ._logger import EventLogger
from ._types import EventType

__all__ = ["EventLogHandler"]

# The logger the library reports its own failures on; see the module docstring.
_LIBRARY_LOGGER = "event_log"

# Longest source / task_id / agent_id an event accepts.
_MAX_TEXT = 255

# Bytes kept back from the retry's budget for the ``"truncated"`` marker and for
# JSON escapes that a measured string may gain once it sits inside the object.
_SLACK_BYTES = 64

# The free-text fields the retry cuts, and their share of the room left. The
# traceback matters most when there is one; it and the stack keep their tail
# (the raising frame and the exception), the others their head.
_SHARES = {"message": 2, "exc_message": 1, "traceback": 4, "stack": 1}
_KEEP_TAIL = frozenset({"traceback", "stack"})


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: the measure the logger applies to ``data``."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _storable(text: str) -> str:
    """``text`` with what the database cannot store (NUL, lone surrogates) made visible."""
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fit(text: str, budget: int, *, keep_tail: bool) -> str:
    """``text`` cut so its JSON string takes at most ``budget`` bytes.

    A traceback keeps its tail (the raising frame and the exception), a message
    its head; a marker says how many characters were cut.
    """
    if _json_size(text) <= budget:
        return text
    marker_bytes = _json_size(f"[... {len(text)} characters cut ...]") - 2  # no quotes
    room = budget - marker_bytes

    def part(keep: int) -> str:
        return text[len(text) - keep :] if keep_tail else text[:keep]

    # The longest part that fits: JSON escapes make bytes per character uneven.
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if _json_size(part(mid)) <= room:
            low = mid
        else:
            high = mid - 1
    if room <= 2:
        return ""
    marker = f"[... {len(text) - low} characters cut ...]"
    return marker + part(low) if keep_tail else part(low) + marker


def _text_attribute(record: logging.LogRecord, name: str) -> str | None:
    """``task_id`` / ``agent_id`` passed as ``extra={...}``, as text the logger accepts."""
    value = getattr(record, name, None)
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:_MAX_TEXT] or None


class EventLogHandler(logging.Handler):
    """Record log records as ``system.*`` events on an :class:`EventLogger`, never blocking.

    ``WARNING`` becomes ``system.warning``; ``ERROR`` and ``CRITICAL`` become
    ``system.error``; with ``level`` below ``WARNING``, the rest become
    ``system.info``. Records below ``level`` are ignored.

    ``source`` defaults to the record's logger name. ``extra={"task_id": ...,
    "agent_id": ...}`` on a logging call fills those columns, so an error shows
    up in the task's timeline. The one truncated retry is sized to the
    logger's ``max_data_bytes``.
    """

    def __init__(
        self,
        log: EventLogger,
        level: int | str = logging.WARNING,
        *,
        source: str | None = None,
    ) -> None:
        """A handler emitting records at ``level`` or above into ``log`` (see the class)."""
        super().__init__(level)
        if source is not None and not 0 < len(source) <= _MAX_TEXT:
            raise ValueError(f"source must be 1..{_MAX_TEXT} characters")
        self.log = log
        self.source = source
        self.max_data_bytes = log.max_data_bytes
        # Records that could not be queued; each also went through handleError().
        self.dropped = 0
        self._dropped_lock = threading.Lock()
        # Set while this thread is inside emit(): a record raised from in there
        # (by the logger, by a filter, by a formatter) is not re-entered.
        self._local = threading.local()

    # -- what is recorded ---------------------------------------------------------------

    @staticmethod
    def event_type_for(levelno: int) -> EventType:
        """The event type a record of this level is recorded as."""
        if levelno >= logging.ERROR:
            return EventType.SYSTEM_ERROR
        if levelno >= logging.WARNING:
            return EventType.SYSTEM_WARNING
        return EventType.SYSTEM_INFO

    def _is_own(self, record: logging.LogRecord) -> bool:
        """True for records that would feed back into this handler; see the module docstring."""
        name = record.name
        return name == _LIBRARY_LOGGER or name.startswith(_LIBRARY_LOGGER + ".")

    def _data(self, record: logging.LogRecord) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message": record.getMessage(),
            "logger": record.name,
            "level": record.levelname,
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "thread": record.threadName,
        }
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            exc_type, exc, tb = exc_info
            assert exc_type is not None
            data["exc_type"] = (
                exc_type.__qualname__
                if exc_type.__module__ == "builtins"
                else f"{exc_type.__module__}.{exc_type.__qualname__}"
            )
            data["exc_message"] = str(exc)
            data["traceback"] = "".join(traceback.format_exception(exc_type, exc, tb))
        if record.stack_info:
            data["stack"] = record.stack_info
        return data

    def _fitted(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` made storable and cut to fit ``max_data_bytes``: the one retry's payload."""
        fitted = {k: _storable(v) if isinstance(v, str) else v for k, v in data.items()}
        long_fields = [k for k in _SHARES if k in fitted]
        rest = {k: v for k, v in fitted.items() if k not in long_fields}
        rest["truncated"] = True
        budget = self.max_data_bytes - _json_size(rest) - _SLACK_BYTES
        # Per long field: its key, quotes, colon and comma are part of the object.
        budget -= sum(len(k) + 4 for k in long_fields)
        if budget <= 0:
            return rest
        total = sum(_SHARES[k] for k in long_fields)
        for key in long_fields:
            fitted[key] = _fit(
                fitted[key], budget * _SHARES[key] // total, keep_tail=key in _KEEP_TAIL
            )
        fitted["truncated"] = True
        return fitted

    # -- logging.Handler -----------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter, then emit *without* the handler's lock (see the module docstring)."""
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue one record as an event; never blocks, never raises (see handleError)."""
        if record.levelno < self.level or self._is_own(record):
            return
        local = self._local
        if getattr(local, "emitting", False):
            return
        local.emitting = True
        try:
            self._emit(record)
        except RecursionError:  # as logging's own handlers do: never hide a runaway stack
            raise
        except Exception:
            with self._dropped_lock:
                self.dropped += 1
            self.handleError(record)
        finally:
            local.emitting = False

    def _emit(self, record: logging.LogRecord) -> None:
        source = self.source or record.name[:_MAX_TEXT] or "logging"
        task_id = _text_attribute(record, "task_id")
        agent_id = _text_attribute(record, "agent_id")
        data = self._data(record)
        event_type = self.event_type_for(record.levelno)
        # The event is timed when the logging call happened, not when it was queued.
        timestamp = datetime.fromtimestamp(record.created, UTC)
        try:
            self.log.emit(
                event_type,
                source,
                task_id=task_id,
                agent_id=agent_id,
                data=data,
                timestamp=timestamp,
                block=False,
            )
        except InvalidEventError:
            # Too large, or text the database cannot store: cut and clean, retry once.
            self.log.emit(
                event_type,
                _storable(source)[:_MAX_TEXT],
                task_id=None if task_id is None else _storable(task_id)[:_MAX_TEXT],
                agent_id=None if agent_id is None else _storable(agent_id)[:_MAX_TEXT],
                data=self._fitted(data),
                timestamp=timestamp,
                block=False,
            )
