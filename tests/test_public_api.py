"""The public names, and nothing created at import time."""

from __future__ import annotations

import subprocess
import sys

import event_log

PROMISED = {
    "EventLogger",
    "EventType",
    "Event",
    "NewEvent",
    "Page",
    "EventLogError",
    "InvalidEventError",
    "InvalidCursorError",
    "StorageError",
    "LoggerClosedError",
    "upgrade",
    "DEFAULT_URL",
    "EventFilter",
    "QueueFullError",
    "HistogramBucket",
    "RetentionPolicy",
}


def test_exported_names() -> None:
    assert set(event_log.__all__) == PROMISED
    assert event_log.__all__ == sorted(event_log.__all__)
    for name in PROMISED:
        assert getattr(event_log, name) is not None


def test_exception_tree() -> None:
    from event_log import (
        EventLogError,
        InvalidCursorError,
        InvalidEventError,
        LoggerClosedError,
        StorageError,
    )

    for error in (InvalidEventError, InvalidCursorError, StorageError, LoggerClosedError):
        assert issubclass(error, EventLogError)
    assert issubclass(InvalidEventError, ValueError)
    assert issubclass(InvalidCursorError, ValueError)


def test_event_type_members() -> None:
    from event_log import EventType

    assert EventType.TASK_ASSIGNED == "task.assigned"
    assert EventType.AGENT_STATUS_CHANGED.value == "agent.status_changed"
    assert len(EventType) == 17


def test_import_creates_no_engine_loop_or_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import asyncio, gc, event_log\n"
        "from sqlalchemy.ext.asyncio import AsyncEngine\n"
        "assert not [o for o in gc.get_objects() if isinstance(o, AsyncEngine)]\n"
        "try:\n    asyncio.get_running_loop()\nexcept RuntimeError:\n    pass\n"
        "else:\n    raise SystemExit('a loop is running')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []


def test_import_leaves_alembic_until_a_migration() -> None:
    # Alembic (with Mako and Pygments) would be about a sixth of the objects
    # a logging process holds, and every full garbage collection walks them.
    code = (
        "import sys, event_log\n"
        "loaded = sorted({'alembic', 'mako', 'pygments'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stored_events_are_the_events_pydantic_would_construct() -> None:
    """Events read back or returned by a write skip re-validation through a shortcut of
    ``model_construct`` (it was the largest cost of the write path); it must keep
    making exactly the event pydantic makes, whatever pydantic's internals become."""
    from datetime import UTC, datetime

    from event_log._models import trusted_event

    values = {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "event_type": "task.created",
        "source": "coordinator",
        "task_id": "t1",
        "agent_id": None,
        "data": {"n": 1},
        "timestamp": datetime(2026, 3, 1, tzinfo=UTC),
    }
    fast, constructed = trusted_event(dict(values)), event_log.Event.model_construct(**values)
    assert fast == constructed
    assert fast.model_dump(mode="json") == constructed.model_dump(mode="json")
    assert fast.model_fields_set == constructed.model_fields_set
    assert fast.model_copy(update={"source": "x"}).source == "x"
