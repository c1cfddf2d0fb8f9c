"""Pydantic models of events, and the validation every event passes before storage.

Validation happens once, up front, in :func:`prepare_event`: it checks every
field, converts ``data`` the way pydantic's JSON mode does, encodes it to
compact JSON exactly once (the same text is stored) and measures it.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

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

# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


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


def storable_text(value: str) -> bool:
    """Whether both backends can store (and so compare) this text: no NUL, valid UTF-8."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


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


_SCALARS = frozenset({str, int, float, bool, type(None)})
# Containers (mappings, lists) in one event's data at most: beyond any real
# payload of 64 kB, and a bound on the walk (and on recursion further on).
_MAX_CONTAINERS = 10_000
# Values nested deeper than this (``data`` itself is the first level, its
# values the second) pydantic-core refuses to serialise; a refusal names the first.
_MAX_DEPTH = 255
# What pydantic's JSON mode writes as an array, element by element.
_ARRAYS = (list, tuple, set, frozenset, deque)
_CONTAINERS = (dict, *_ARRAYS)


def _keys_are_text(data: Mapping[Any, Any]) -> bool:
    """Whether every mapping key, at every depth, is a str (JSON would coerce others).

    Also False after ``_MAX_CONTAINERS`` containers, so that data which
    contains itself (JSON cannot express it) is refused instead of walked
    forever; :func:`_refused` then says which it was.
    """
    stack: list[Any] = [data]
    visited = 0
    while stack:
        item = stack.pop()
        visited += 1
        if visited > _MAX_CONTAINERS:
            return False
        if isinstance(item, Mapping):
            for key, value in item.items():
                if type(key) is not str and not isinstance(key, str):
                    return False
                # Exact-type test first: ABC isinstance checks are slow on the hot path.
                if type(value) not in _SCALARS and isinstance(value, Mapping | list | tuple):
                    stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(
                v for v in item if type(v) not in _SCALARS and isinstance(v, Mapping | list | tuple)
            )
    return True


def _is_flat_json(data: dict[Any, Any]) -> bool:
    """True for str keys and exact JSON scalar values only (finite floats)."""
    for key, value in data.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _non_finite(value: Any) -> bool:
    """True when a NaN or an infinity sits anywhere in this JSON-mode value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _segment(key: str) -> str:
    """One step of a path: ``.name`` for an identifier, else ``["the key"]``."""
    if key.isidentifier():
        return "." + _clip(key)
    # Raw text reads best; escapes when it holds anything unprintable (a line
    # break, NUL, a lone surrogate), so the message stays one printable line.
    return "[" + json.dumps(_clip(key), ensure_ascii=not key.isprintable()) + "]"


def _path(parts: Sequence[str]) -> str:
    """``data`` and the steps to a value; a very deep one keeps its first and last steps."""
    if len(parts) > 10:
        parts = [*parts[:6], "...", *parts[-2:]]
    return "data" + "".join(parts)


def _text_problem(text: str) -> str | None:
    """What keeps this text out of storage (see :func:`storable_text`), if anything."""
    if "\x00" in text:
        return "contains a NUL character, which the databases cannot store; remove it"
    if not storable_text(text):
        return "is not valid Unicode (it holds a lone surrogate); fix or remove it"
    return None


def _value_problem(value: object) -> tuple[str | None, Any]:
    """What is wrong with one value that is not an object or array, or else its JSON
    form to look into (a dataclass or model may hold a NaN), or ``(None, None)``."""
    if isinstance(value, str):
        return _text_problem(str.__str__(value)), None
    if isinstance(value, float):
        if math.isfinite(value):
            return None, None
        name = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        return f"is {name}: JSON has no NaN or Infinity; store None or a string instead", None
    if isinstance(value, bytes | bytearray):
        # JSON mode stores bytes as the text they encode in UTF-8.
        try:
            text = bytes(value).decode()
        except UnicodeDecodeError:
            return "is bytes that are not UTF-8 text; decode them or store them as base64", None
        return _text_problem(text), None
    if value is None or isinstance(value, int):
        return None, None
    try:
        converted = to_jsonable_python(value)
    except (ValueError, RecursionError):
        return (
            f"is of type {type(value).__name__}, which is not JSON-serialisable; "
            "convert it to text, a number, a list or a dict first"
        ), None
    return None, converted


def _refusal(data: object) -> str | None:
    """Why ``data`` cannot be stored, naming the path of the first value at fault.

    Called only once encoding has failed, so the hot path never builds paths:
    this walks ``data`` again, in order, as JSON mode would (dicts and their
    subclasses as objects, ``_ARRAYS`` as arrays, anything else by its JSON
    form). None when no value is to blame within ``_MAX_CONTAINERS`` containers.
    """
    # (leaving, value, path): a leaving entry takes a container's id off `inside`.
    stack: list[tuple[bool, Any, tuple[str, ...]]] = [(False, data, ())]
    inside: set[int] = set()  # the containers around the value being looked at
    containers = 0
    while stack:
        leaving, value, parts = stack.pop()
        if leaving:
            inside.discard(value)
            continue
        if len(parts) >= _MAX_DEPTH:
            return f"{_path(parts)} is nested more than {_MAX_DEPTH} levels deep; flatten it"
        if not isinstance(value, _CONTAINERS):
            problem, converted = _value_problem(value)
            if problem is not None:
                return f"{_path(parts)} {problem}"
            if converted is not None:
                stack.append((False, converted, parts))
            continue
        containers += 1
        if containers > _MAX_CONTAINERS:
            return None
        if id(value) in inside:
            return (
                f"{_path(parts)} refers back to an object or array that holds it (a cycle), "
                "which JSON cannot express; break the cycle"
            )
        children: list[tuple[bool, Any, tuple[str, ...]]] = []
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return (
                        f"{_path(parts)} has a key of type {type(key).__name__} "
                        f"({_clip(repr(key))}); keys must be strings"
                    )
                step = (*parts, _segment(key))
                problem = _text_problem(str.__str__(key))
                if problem is not None:
                    return f"{_path(step)} (a key) {problem}"
                children.append((False, item, step))
        else:
            children.extend((False, item, (*parts, f"[{i}]")) for i, item in enumerate(value))
        inside.add(id(value))
        stack.append((True, id(value), ()))  # under its children: popped after them
        stack.extend(reversed(children))
    return None


def _refused(data: object, reason: str | Exception) -> InvalidEventError:
    """The error for data that cannot be stored: the value at fault and its path when
    :func:`_refusal` finds one, else ``reason`` (on one line)."""
    found = _refusal(data)
    if found is None:
        found = reason if isinstance(reason, str) else f"data is not JSON-serialisable: {reason}"
    return InvalidEventError(" ".join(found.splitlines()))


def _check_size(encoded: bytes, max_bytes: int) -> None:
    if len(encoded) > max_bytes:
        raise InvalidEventError(
            f"data is {len(encoded)} bytes as JSON; at most {max_bytes} "
            "(the logger's max_data_bytes): store less, or raise the limit"
        )


def encode_data(
    data: object, max_bytes: int, redactor: Redactor | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """``data`` as pydantic's JSON mode sees it, and its compact JSON text (one encoding).

    pydantic-core does both conversions in Rust; the Python around it only
    checks what JSON would otherwise hide (non-str keys, NaN, NUL). A refusal
    names the value at fault by its path (``data.a.b[1] is NaN: ...``), found
    by :func:`_refusal` after the fact.
    """
    if data is None:
        return None, None
    if type(data) is dict and _is_flat_json(data):
        # The common case, a flat dict of JSON scalars: already what JSON mode
        # gives back, so a shallow copy replaces the conversion.
        if redactor is not None:
            data = redactor.apply_flat(data)
        try:
            encoded = to_json(data)
        except PydanticSerializationError as exc:  # e.g. a lone surrogate in a string
            raise _refused(data, exc) from None
        if b"\\u0000" in encoded and _NUL_ESCAPE.search(encoded.decode()):
            raise _refused(data, "data must not contain NUL characters")
        _check_size(encoded, max_bytes)
        return dict(data), encoded.decode()
    if not isinstance(data, Mapping):
        raise InvalidEventError(f"data must be a mapping or None, not {type(data).__name__}")
    if not _keys_are_text(data):
        raise _refused(
            data,
            f"data holds more than {_MAX_CONTAINERS} objects and arrays; "
            "split it across several events",
        )
    plain: Any = None
    try:
        if redactor is not None:
            data = redactor.apply(data)
        # Converted first, then the conversion encoded: each value is read once,
        # so an iterator in data is stored as the list the event returns.
        plain = to_jsonable_python(data)
        encoded = to_json(plain, inf_nan_mode="constants")
    except (ValueError, RecursionError) as exc:
        # PydanticSerializationError and UnicodeDecodeError (bytes) are ValueErrors;
        # RecursionError comes from redacting very deep data.
        raise _refused(data if plain is None else plain, exc) from None
    # Bare NaN / Infinity tokens can only come from non-finite floats; a string
    # that merely contains those letters takes the exact check and passes it.
    if (b"NaN" in encoded or b"Infinity" in encoded) and _non_finite(plain):
        raise _refused(plain, "data is not strict JSON: NaN and Infinity are not allowed")
    if b"\\u0000" in encoded and _NUL_ESCAPE.search(encoded.decode()):
        raise _refused(plain, "data must not contain NUL characters")
    _check_size(encoded, max_bytes)
    return plain, encoded.decode()


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
