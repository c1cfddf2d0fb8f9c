"""event-log: the async audit trail of a multi-agent swarm, on SQLite, PostgreSQL or MariaDB.

Blocking code (threads, the original system's module functions) uses ``event_log.sync``.
"""

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
from ._errors import MissingDriverError as MissingDriverError
from ._filters import EventFilter
from ._filters import FilterKeywords as FilterKeywords
from ._importing import ImportResult as ImportResult
from ._legacy import ImportSourceError as ImportSourceError
from ._legacy import LegacyDatabase as LegacyDatabase
from ._legacy import LegacyImport as LegacyImport
from ._logger import EventLogger
from ._migrate import upgrade
from ._models import Event, HistogramBucket, NewEvent, Page
from ._pruning import PrunePreview as PrunePreview
from ._queries import MAX_BUCKETS as MAX_BUCKETS
from ._queries import MAX_PAGE_SIZE as MAX_PAGE_SIZE
from ._queries import HistogramGroup as HistogramGroup
from ._retention import RetentionPolicy
from ._types import EventType
from ._writer import WriterStats as WriterStats

# The names imported "as" themselves above (create_data_index, HistogramGroup,
# ImportResult, ...) are importable too without being part of the star-import surface
# (FilterKeywords and WriterStats type event_log.sync's mirror of EventLogger).
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
