"""event-log: the async audit trail of a multi-agent swarm, on SQLite or PostgreSQL."""

from ._data_index import create_data_index as create_data_index
from ._engine import DEFAULT_URL
from ._errors import (
    EventLogError,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    QueueFullError,
    StorageError,
)
from ._filters import EventFilter
from ._logger import EventLogger
from ._migrate import upgrade
from ._models import Event, HistogramBucket, NewEvent, Page
from ._queries import HistogramGroup as HistogramGroup
from ._retention import RetentionPolicy
from ._types import EventType

# create_data_index and HistogramGroup are importable too (the "X as X" imports
# above) without being part of the star-import surface.
__all__ = [
    "DEFAULT_URL",
    "Event",
    "EventFilter",
    "EventLogError",
    "EventLogger",
    "EventType",
    "HistogramBucket",
    "InvalidCursorError",
    "InvalidEventError",
    "LoggerClosedError",
    "NewEvent",
    "Page",
    "QueueFullError",
    "RetentionPolicy",
    "StorageError",
    "upgrade",
]
