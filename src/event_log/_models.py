"""Pydantic models of events, and the validation every event passes before storage.

Validation happens once, up front, in :func:`prepare_event`: it checks every
field, converts ``data`` the way pydantic's JSON mode does, encodes it to
compact JSON exactly once (the same text is stored) and measures it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._errors import InvalidEventError
from ._ids import new_id
from ._types import EVENT_TYPE_MAX_LENGTH, is_valid_event_type

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "TEXT_MAX_LENGTH",
    "Event",
    "NewEvent",
    "Page",
    "PreparedEvent",
    "check_aware",
    "check_event_type",
    "check_text",
    "coerce_new_event",
    "prepare_event",
]

DEFAULT_MAX_DATA_BYTES = 65_536
TEXT_MAX_LENGTH = 255

# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_encode_json = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


def check_event_type(value: object) -> str:
    """The event type as a plain ``str``, or :class:`InvalidEventError`."""
    if not is_valid_event_type(value):
        raise InvalidEventError(
            f"event_type {value!r} is not a dotted lowercase name of at least two "
            f"segments and at most {EVENT_TYPE_MAX_LENGTH} characters (e.g. 'task.created')"
        )
    return str(value)


def _check_storable(field: str, value: str) -> None:
    # Both backends store UTF-8 text, and PostgreSQL text cannot hold NUL.
    if "\x00" in value:
        raise InvalidEventError(f"{field} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEventError(f"{field} is not valid Unicode text: {exc.reason}") from None


def check_text(field: str, value: object, *, required: bool) -> str | None:
    """A source / task_id / agent_id: a str of 1..255 characters (or None when optional)."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidEventError(f"{field} must be a string, not {type(value).__name__}")
    if not value and required:
        raise InvalidEventError(f"{field} must not be empty")
    if len(value) > TEXT_MAX_LENGTH:
        raise InvalidEventError(f"{field} is {len(value)} characters; at most {TEXT_MAX_LENGTH}")
    _check_storable(field, value)
    return value


def check_aware(field: str, value: object) -> datetime:
    """An aware datetime converted to UTC; naive or non-datetime values are refused."""
    if not isinstance(value, datetime):
        raise InvalidEventError(f"{field} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError(f"{field} must be timezone-aware")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidEventError(f"{field} {value!r} is out of range in UTC") from None


def _check_keys(data: Mapping[Any, Any]) -> None:
    """Every mapping key, at every depth, must be a str (JSON would coerce others)."""
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if not isinstance(key, str):
                    raise InvalidEventError(
                        f"data keys must be strings; found {type(key).__name__} key {key!r}"
                    )
                if isinstance(value, Mapping | list | tuple):
                    stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(v for v in item if isinstance(v, Mapping | list | tuple))


def encode_data(data: object, max_bytes: int) -> tuple[dict[str, Any] | None, str | None]:
    """``data`` as pydantic's JSON mode sees it, and its compact JSON text (one encoding)."""
    if data is None:
        return None, None
    if not isinstance(data, Mapping):
        raise InvalidEventError(f"data must be a mapping or None, not {type(data).__name__}")
    _check_keys(data)
    try:
        plain = to_jsonable_python(data)
        text = _encode_json(plain)
    except PydanticSerializationError as exc:
        raise InvalidEventError(f"data is not JSON-serialisable: {exc}") from None
    except ValueError as exc:  # NaN / Infinity with allow_nan=False
        raise InvalidEventError(f"data is not strict JSON: {exc}") from None
    except RecursionError:
        raise InvalidEventError("data is nested too deeply to serialise") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise InvalidEventError("data must not contain NUL characters")
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidEventError(f"data is not valid Unicode text: {exc.reason}") from None
    if size > max_bytes:
        raise InvalidEventError(f"data is {size} bytes as JSON; at most {max_bytes}")
    return plain, text


class Event(BaseModel):
    """A stored event. Immutable; ``model_dump(mode="json")`` is its wire form."""

    model_config = ConfigDict(frozen=True)

    id: str
    event_type: str
    source: str
    task_id: str | None = None
    agent_id: str | None = None
    data: dict[str, Any] | None = None
    timestamp: datetime

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return check_aware("timestamp", value)


class NewEvent(BaseModel):
    """Input for :meth:`EventLogger.log_events`: an event without its id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    source: str
    task_id: str | None = None
    agent_id: str | None = None
    data: dict[str, Any] | None = None
    timestamp: datetime | None = None

    @field_validator("event_type", mode="before")
    @classmethod
    def _event_type(cls, value: object) -> str:
        return check_event_type(value)

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: object) -> str | None:
        return check_text("source", value, required=True)

    @field_validator("task_id", "agent_id", mode="before")
    @classmethod
    def _optional_text(cls, value: object, info: Any) -> str | None:
        return check_text(info.field_name, value, required=False)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: object) -> dict[str, Any] | None:
        # The size limit belongs to the logger; it is checked in prepare_event.
        plain, _ = encode_data(value, max_bytes=2**63)
        return plain

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_aware("timestamp", value)


class Page(BaseModel):
    """One page of a listing; pass ``next_cursor`` back to get the next (None: last page)."""

    model_config = ConfigDict(frozen=True)

    events: list[Event]
    next_cursor: str | None = None


class PreparedEvent:
    """A validated event and the row that stores it (data already encoded)."""

    __slots__ = ("event", "row")

    def __init__(self, event: Event, row: dict[str, Any]) -> None:
        self.event = event
        self.row = row


def prepare_event(
    event_type: object,
    source: object,
    task_id: object = None,
    agent_id: object = None,
    data: object = None,
    timestamp: object = None,
    *,
    max_data_bytes: int,
) -> PreparedEvent:
    """Validate one event, give it an id and a timestamp, and build its row."""
    event_type = check_event_type(event_type)
    source = check_text("source", source, required=True)
    assert source is not None
    task_id = check_text("task_id", task_id, required=False)
    agent_id = check_text("agent_id", agent_id, required=False)
    plain, text = encode_data(data, max_data_bytes)
    when = datetime.now(UTC) if timestamp is None else check_aware("timestamp", timestamp)
    event_id = new_id()
    event = Event.model_construct(
        id=event_id,
        event_type=event_type,
        source=source,
        task_id=task_id,
        agent_id=agent_id,
        data=plain,
        timestamp=when,
    )
    row = {
        "id": event_id,
        "event_type": event_type,
        "source": source,
        "task_id": task_id,
        "agent_id": agent_id,
        "data": text,
        "timestamp": when,
    }
    return PreparedEvent(event, row)


def coerce_new_event(item: object) -> NewEvent:
    """A :class:`NewEvent` from itself or a mapping; anything else is invalid."""
    if isinstance(item, NewEvent):
        return item
    if not isinstance(item, Mapping):
        raise InvalidEventError(f"expected a NewEvent or a mapping, not {type(item).__name__}")
    try:
        return NewEvent.model_validate(dict(item))
    except ValidationError as exc:
        raise InvalidEventError(str(exc)) from exc
