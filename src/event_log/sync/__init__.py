"""event-log for blocking code: :class:`SyncEventLogger` and the original module's functions.

``SyncEventLogger`` is the blocking mirror of :class:`~event_log.EventLogger` (the same
methods, arguments, results and exceptions), for threads and for code that cannot
``await``. The functions ``log_event``, ``get_event``, ``list_events``,
``get_task_events``, ``get_agent_events``, ``get_recent_events``, ``get_event_summary``
and ``prune_events`` are the original system's ``swarm.event_log`` module, with its
parameters and their order, bound to a default logger opened on first use (see
:func:`configure`): changing that module's import line to this one is the migration.

Importing this module creates nothing (no thread, loop or engine); ``import event_log``
does not import it.
"""

from event_log import (
    Event,
    EventLogError,
    EventType,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    QueueFullError,
    StorageError,
)

from ._default import (
    close,
    configure,
    default_logger,
    get_agent_events,
    get_event,
    get_event_summary,
    get_recent_events,
    get_task_events,
    list_events,
    log_event,
    prune_events,
    shutdown,
)
from ._logger import SyncEventLogger, SyncFollower

__all__ = [
    "Event",
    "EventLogError",
    "EventType",
    "InvalidCursorError",
    "InvalidEventError",
    "LoggerClosedError",
    "QueueFullError",
    "StorageError",
    "SyncEventLogger",
    "SyncFollower",
    "close",
    "configure",
    "default_logger",
    "get_agent_events",
    "get_event",
    "get_event_summary",
    "get_recent_events",
    "get_task_events",
    "list_events",
    "log_event",
    "prune_events",
    "shutdown",
]
