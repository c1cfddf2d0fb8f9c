"""Pydantic models of events, and the validation every event passes before storage.

Validation happens once, up front, in :func:`prepare_event`: it checks every
field, converts ``data`` the way pydantic's JSON mode does, encodes it to
compact JSON exactly once (the same text is stored) and measures it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ._data import encode_data, storable_text
from ._errors import InvalidEventError
from ._ids import new_id, new_ids
from ._redact import Redactor
from ._types import EVENT_TYPE_MAX_LENGTH, KNOWN_EVENT_TYPES, is_valid_event_type

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_MAX_DATA_BYTES",
    "TEXT_MAX_LENGTH",
    "Event",
    "HistogramBucket",
    "NewEvent",
    "Page",
    "PreparedEvent",
    "Row",
    "check_aware",
    "check_event_type",
    "check_text",
    "prepare_event",
    "prepare_new_events",
    "prepared_chunks",
    "storable_text",
    "trusted_event",
]

DEFAULT_MAX_DATA_BYTES = 65_536
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)
TEXT_MAX_LENGTH = 255


def check_event_type(value: object) -> str:
    """The event type as a plain ``str``, or :class:`InvalidEventError`."""
    if type(value) is str and value in KNOWN_EVENT_TYPES:
        return value
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
    # Fast path for the usual case: short printable ASCII needs no further checks.
    if (
        type(value) is str
        and 0 < len(value) <= TEXT_MAX_LENGTH
        and value.isascii()
        and "\x00" not in value
    ):
        return value
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
        utc = value.astimezone(UTC)
    except OverflowError:
        raise InvalidEventError(f"{field} {value!r} is out of range in UTC") from None
    if not _EARLIEST <= utc <= _LATEST:
        # PostgreSQL's driver turns the very ends of datetime's range into
        # -infinity / infinity, which do not read back as datetimes.
        raise InvalidEventError(f"{field} must be between {_EARLIEST} and {_LATEST}")
    return utc


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


_EVENT_FIELDS = frozenset(Event.model_fields)
_NEW_EVENT_FIELDS = frozenset(NewEvent.model_fields)


# BaseModel's own slots, set through their descriptors (no attribute lookup).
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_new_object = object.__new__


def trusted_event(values: dict[str, Any]) -> Event:
    """An :class:`Event` from already-validated values, without re-validation.

    This is what ``Event.model_construct`` does, minus its per-call default
    and field-set bookkeeping (all seven fields are always present), which
    made it the largest cost on the write path. The slots are set through
    their descriptors: ``object.__setattr__`` would look each one up first.
    """
    event = _new_object(Event)
    _set_dict(event, values)
    # A set of its own, as model_construct gives: model_copy(update=...) adds to it.
    _set_fields_set(event, set(_EVENT_FIELDS))
    _set_extra(event, None)
    _set_private(event, None)
    return event


# A stored row, in the table's column order:
# (id, event_type, source, task_id, agent_id, data as JSON text, timestamp)
Row = tuple[str, str, str, str | None, str | None, str | None, datetime]


class HistogramBucket(BaseModel):
    """Counts of one time bucket ``[start, end)``; ``counts`` is by group (empty when ungrouped)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    total: int
    counts: dict[str, int]


class PreparedEvent:
    """A validated event and the row that stores it (data already encoded)."""

    __slots__ = ("event", "row")

    def __init__(self, event: Event, row: Row) -> None:
        self.event = event
        self.row = row


def _prepared(
    event_id: str,
    event_type: object,
    source: object,
    task_id: object,
    agent_id: object,
    data: object,
    timestamp: object,
    max_data_bytes: int,
    redactor: Redactor | None,
) -> tuple[Event, Row]:
    """One event validated (secrets masked), stamped, and its row (positional: the hot path)."""
    event_type = check_event_type(event_type)
    source = check_text("source", source, required=True)
    assert source is not None
    task_id = check_text("task_id", task_id, required=False)
    agent_id = check_text("agent_id", agent_id, required=False)
    plain, text = encode_data(data, max_data_bytes, redactor)
    when = datetime.now(UTC) if timestamp is None else check_aware("timestamp", timestamp)
    event = trusted_event(
        {
            "id": event_id,
            "event_type": event_type,
            "source": source,
            "task_id": task_id,
            "agent_id": agent_id,
            "data": plain,
            "timestamp": when,
        }
    )
    return event, (event_id, event_type, source, task_id, agent_id, text, when)


def prepare_event(
    event_type: object,
    source: object,
    task_id: object = None,
    agent_id: object = None,
    data: object = None,
    timestamp: object = None,
    *,
    max_data_bytes: int,
    redactor: Redactor | None = None,
) -> PreparedEvent:
    """Validate one event (masking secrets), give it an id and a timestamp, build its row."""
    event, row = _prepared(
        new_id(), event_type, source, task_id, agent_id, data, timestamp, max_data_bytes, redactor
    )
    return PreparedEvent(event, row)


def _new_event_fields(item: object) -> Mapping[str, Any]:
    """The fields of a :class:`NewEvent` or of a mapping of its fields, checked for shape."""
    # dict first: isinstance against a pydantic model class is slow for anything else.
    if isinstance(item, dict):
        fields: Mapping[str, Any] = item
    elif isinstance(item, NewEvent):
        return item.__dict__
    elif isinstance(item, Mapping):
        fields = item
    else:
        raise InvalidEventError(f"expected a NewEvent or a mapping, not {type(item).__name__}")
    if not fields.keys() <= _NEW_EVENT_FIELDS:
        unknown = sorted(map(str, set(fields) - _NEW_EVENT_FIELDS))
        raise InvalidEventError(f"unknown field(s) {unknown}")
    if "event_type" not in fields or "source" not in fields:
        raise InvalidEventError("an event needs at least event_type and source")
    if isinstance(fields.get("timestamp"), (str, int, float)):  # a tuple: faster than a union
        # Let pydantic parse ISO strings and the like, as NewEvent(...) would.
        return _as_new_event(fields).__dict__
    return fields


def prepare_new_events(
    items: Sequence[object],
    start: int,
    stop: int,
    *,
    max_data_bytes: int,
    redactor: Redactor | None = None,
    events: list[Event],
) -> list[Row]:
    """Validate ``items[start:stop]`` (each a :class:`NewEvent` or a mapping of its fields).

    Appends their events to ``events`` and returns their rows; the first
    invalid item raises :class:`InvalidEventError` naming its index. Their ids
    come from one :func:`new_ids` call.
    """
    ids = new_ids(stop - start)
    rows: list[Row] = []
    for index in range(start, stop):
        try:
            f = _new_event_fields(items[index])
            event, row = _prepared(
                ids[index - start],
                f["event_type"],
                f["source"],
                f.get("task_id"),
                f.get("agent_id"),
                f.get("data"),
                f.get("timestamp"),
                max_data_bytes,
                redactor,
            )
        except InvalidEventError as exc:
            raise InvalidEventError(f"event #{index}: {exc}") from exc
        events.append(event)
        rows.append(row)
    return rows


def _as_new_event(fields: Mapping[str, Any]) -> NewEvent:
    try:
        return NewEvent.model_validate(dict(fields))
    except ValidationError as exc:
        raise InvalidEventError(str(exc)) from exc


# Events of a log_events batch validated at a time (about 25 kB of COPY text
# on PostgreSQL, where each chunk is sent as soon as it is made).
CHUNK_ROWS = 100


def prepared_chunks(
    items: Sequence[NewEvent | Mapping[str, Any]],
    *,
    max_data_bytes: int,
    redactor: Redactor | None,
    made: list[Event],
) -> Iterator[list[Row]]:
    """Validate ``items`` a chunk at a time, yielding rows and keeping the events in ``made``.

    Lazy so that on PostgreSQL the server stores one chunk while the next is
    validated (``Writer.write_chunks``); elsewhere all are made first.
    """
    for start in range(0, len(items), CHUNK_ROWS):
        yield prepare_new_events(
            items,
            start,
            min(start + CHUNK_ROWS, len(items)),
            max_data_bytes=max_data_bytes,
            redactor=redactor,
            events=made,
        )
