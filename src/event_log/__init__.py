"""event-log: the async audit trail of a multi-agent swarm, on SQLite or PostgreSQL."""

from ._data_index import create_data_index as create_data_index
from ._engine import DEFAULT_URL
from ._errors import (
    EventLogError,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    StorageError,
)
from ._errors import QueueFullError as QueueFullError
from ._logger import EventLogger
from ._migrate import upgrade
from ._models import Event, NewEvent, Page
from ._models import HistogramBucket as HistogramBucket
from ._retention import RetentionPolicy as RetentionPolicy
from ._types import EventType

# QueueFullError, HistogramBucket, RetentionPolicy and create_data_index are
# importable too (the "X as X" imports above), but kept out of __all__: it lists
# exactly the names API.md binds.
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
