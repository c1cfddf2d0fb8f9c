"""event-log: the async audit trail of a multi-agent swarm, on SQLite or PostgreSQL."""

from ._engine import DEFAULT_URL
from ._errors import (
    EventLogError,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    StorageError,
)
from ._logger import EventLogger
from ._migrate import upgrade
from ._models import Event, NewEvent, Page
from ._types import EventType

__all__ = [
    "DEFAULT_URL",
    "Event",
    "EventLogError",
    "EventLogger",
    "EventType",
    "InvalidCursorError",
    "InvalidEventError",
    "LoggerClosedError",
    "NewEvent",
    "Page",
    "StorageError",
    "upgrade",
]
