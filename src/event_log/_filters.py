"""EventFilter: every read filter, declared once.

``list_events``, ``count_events``, ``follow`` and ``get_event_histogram`` take an
``EventFilter`` as ``filter=``, or the same fields as keywords (sugar that builds
one). The command line's options and the web API's query parameters are derived
from :attr:`EventFilter.model_fields`, so a field added here is offered by both.

:meth:`EventFilter.from_texts` reads the fields from the text a command line or
a query string carries: a ``data_contains`` JSON object as text, ``data_where``
conditions such as ``"bid_sats>=100"``, times as ISO 8601 with an offset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic import field_validator as _field_validator

from ._data_filters import MAX_DEPTH, OPERATORS, DataFilter
from ._matching import matches as _matches
from ._models import Event, storable_text
from ._types import is_valid_event_type

__all__ = [
    "EventFilter",
    "FilterKeywords",
    "TypeSpec",
    "filter_from",
    "parse_where",
]

_PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*\.\*")
# What a command line or query string would send as a number meaning Unix time:
# refused, since times are ISO 8601 with an offset.
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """Event types to match: exact names and ``prefix.*`` patterns (stored without the ``*``)."""

    exact: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str, value: str | Collection[str]) -> TypeSpec:
        """One type, a pattern such as ``"task.*"``, or a collection of them; else ValueError."""
        if not isinstance(value, str | Collection):
            raise ValueError(f"{name} must be a string or a collection of them, not {value!r}")
        wanted = [value] if isinstance(value, str) else list(value)
        exact: list[str] = []
        prefixes: list[str] = []
        for item in wanted:
            if not isinstance(item, str):
                raise ValueError(f"{name} must be a string, not {type(item).__name__}")
            if _PREFIX_PATTERN.fullmatch(item):
                prefixes.append(item[:-1])  # "task.*" -> "task."
            elif is_valid_event_type(item):
                exact.append(str(item))
            else:
                raise ValueError(
                    f"{name} {item!r} is neither an event type nor a prefix pattern "
                    f"such as 'task.*'"
                )
        return cls(tuple(exact), tuple(prefixes))

    @property
    def single(self) -> bool:
        return len(self.exact) == 1 and not self.prefixes

    def matches(self, event_type: str) -> bool:
        return event_type in self.exact or event_type.startswith(self.prefixes)


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def parse_where(text: str) -> tuple[str, str, Any]:
    """``"bid_sats>=100"`` as ``("bid_sats", ">=", 100)``.

    The first operator in the text splits it (two-character operators before
    their one-character prefixes), so such keys cannot contain ``=``, ``<`` or
    ``>`` (``data_contains`` can match those). A value that starts with an
    operator character (``a>>1``, ``a==1``) is refused as a mistyped operator;
    quote it as JSON (``a=">1"``) to mean that text. The value is JSON when it parses
    (``100``, ``true``, ``null``, ``"42"``), else the text itself (``gpt-4``);
    ``NaN`` and ``Infinity`` stay text.
    """
    for at, char in enumerate(text):
        if char in "=<>" or text.startswith("!=", at):
            op = text[at : at + 2] if text[at : at + 2] in OPERATORS else char
            break
    else:
        raise ValueError(
            f"data_where {text!r}: expected KEY OP VALUE with OP one of {' '.join(OPERATORS)}"
        )
    key, raw = text[:at].strip(), text[at + len(op) :].strip()
    if not key:
        raise ValueError(f"data_where {text!r}: the key before the operator is empty")
    if raw[:1] in ("=", "<", ">", "!"):
        # "a>>1", "a=>1", "a==1": an operator that does not exist, not a text value.
        wrong = op + raw[: 2 if raw[1:2] in ("=", "<", ">") else 1]
        raise ValueError(
            f"data_where {text!r}: {wrong!r} is not an operator (use one of "
            f"{' '.join(OPERATORS)}; to compare with text that starts with {raw[0]!r}, "
            f'quote it as JSON: {key}{op}"{raw}")'
        )
    try:
        value: Any = json.loads(raw, parse_constant=_no_constants)
    except ValueError:
        value = raw
    except RecursionError:  # nested past what the parser can take
        raise ValueError(f"data_where {text[:40]!r}...: the value is nested too deeply") from None
    return key, op, value


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if not storable_text(value):
        raise ValueError(f"{name} must be text without NUL characters or lone surrogates")
    return value


def _iso_time(name: str, text: str) -> datetime:
    """An ISO 8601 time from text; a bare number (Unix time?) is refused."""
    if _NUMBER.fullmatch(text):
        raise ValueError(
            f"{name} must be an ISO 8601 time with an offset, e.g. 2026-03-01T12:00:00Z"
        )
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{name} {text!r} is not an ISO 8601 time, e.g. 2026-03-01T12:00:00Z"
        ) from None


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or a number too deep to parse
        raise ValueError(f"{name} is not valid JSON: {exc}") from None
    except RecursionError:  # nested past what the parser can take
        raise ValueError(
            f"{name} is nested too deeply (at most {MAX_DEPTH} levels of objects and lists)"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f'{name} must be a JSON object, like {{"model": "gpt-4"}}')
    return value


def _names(value: object) -> object:
    """A collection of names as a tuple (in its order); one name stays a string."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, Collection) and not isinstance(value, bytes | Mapping):
        return tuple(value)
    return value


def _aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value!r})")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} {value!r} is out of range in UTC") from None


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """What the statements need, worked out once when the filter is made."""

    types: TypeSpec | None = None
    exclude_types: TypeSpec | None = None
    exclude_sources: tuple[str, ...] = ()
    data: DataFilter | None = None


class EventFilter(BaseModel):
    """Which events a read returns: every field narrows it, and all must hold.

    Frozen and validated when made: anything unusable raises ``ValueError``
    (pydantic's ``ValidationError``). ``EventFilter()`` matches every event.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str | tuple[str, ...] | None = Field(
        None,
        description="Event type: one, several (any matches), or a prefix such as `task.*`.",
    )
    source: str | None = Field(None, description="Exact source.")
    task_id: str | None = Field(None, description="Exact task id.")
    agent_id: str | None = Field(None, description="Exact agent id.")
    since: datetime | None = Field(
        None, description="Events at or after this time (ISO 8601 with an offset)."
    )
    until: datetime | None = Field(
        None, description="Events before this time (ISO 8601 with an offset)."
    )
    exclude_event_type: str | tuple[str, ...] | None = Field(
        None, description="Leave out these event types (or prefixes such as `tool.*`)."
    )
    exclude_source: str | tuple[str, ...] | None = Field(
        None, description="Leave out events from these sources."
    )
    data_contains: dict[str, Any] | None = Field(
        None,
        description=(
            'Only events whose data contains this JSON object, e.g. `{"model": "gpt-4"}` '
            "(PostgreSQL jsonb `@>` rules, on every backend)."
        ),
    )
    data_where: tuple[tuple[str, str, Any], ...] | None = Field(
        None,
        description=(
            "Conditions on top-level data keys, all of which must hold: "
            "`KEY OP VALUE` with OP one of = != < <= > >=, e.g. `bid_sats>=100`. "
            "A value matches only stored values of its JSON type: numbers compare "
            "numerically, strings by code point. A Decimal or datetime was stored as "
            'text, so compare it with text (`price="1.5"`, ISO times in UTC).'
        ),
    )

    _compiled: CompiledFilter = PrivateAttr(default_factory=CompiledFilter)

    @_field_validator("event_type", "exclude_event_type", mode="before")
    @classmethod
    def _check_types(cls, value: object, info: Any) -> object:
        value = _names(value)
        if value is not None:
            TypeSpec.parse(info.field_name, value)  # type: ignore[arg-type]
        return value

    @_field_validator("source", "task_id", "agent_id", mode="before")
    @classmethod
    def _check_text(cls, value: object, info: Any) -> object:
        return None if value is None else _text(info.field_name, value)

    @_field_validator("exclude_source", mode="before")
    @classmethod
    def _check_sources(cls, value: object) -> object:
        value = _names(value)
        if isinstance(value, tuple):
            return tuple(_text("exclude_source", item) for item in value)
        return None if value is None else _text("exclude_source", value)

    @_field_validator("since", "until", mode="before")
    @classmethod
    def _check_time(cls, value: object, info: Any) -> object:
        return None if value is None else _aware(info.field_name, value)

    @_field_validator("data_contains", mode="before")
    @classmethod
    def _check_contains(cls, value: object) -> object:
        if value is None:
            return None
        built = DataFilter.build(value, None)
        return {} if built is None or built.contains is None else built.contains

    @_field_validator("data_where", mode="before")
    @classmethod
    def _check_where(cls, value: object) -> object:
        built = DataFilter.build(None, value)
        return tuple((c.key, c.op, c.value) for c in built.where) if built else None

    @model_validator(mode="after")
    def _compile(self) -> EventFilter:
        excluded = self.exclude_source
        self._compiled = CompiledFilter(
            types=None if self.event_type is None else TypeSpec.parse("", self.event_type),
            exclude_types=(
                None
                if self.exclude_event_type is None
                else TypeSpec.parse("", self.exclude_event_type)
            ),
            exclude_sources=(excluded,) if isinstance(excluded, str) else excluded or (),
            data=DataFilter.build(self.data_contains, self.data_where),
        )
        return self

    @classmethod
    def from_texts(cls, texts: Mapping[str, str | Sequence[str] | None]) -> EventFilter:
        """A filter from the text of command-line options or query parameters.

        Keys are field names. Type and source fields take one text or several
        (each may also be comma-separated); ``since``/``until`` ISO 8601 times
        with an offset; ``data_contains`` a JSON object; ``data_where`` one or
        more ``KEY OP VALUE`` conditions (see :func:`parse_where`). A value that
        is not text (a ``datetime`` worked out by the caller, say) is taken as
        it is; ``None`` and empty lists count as not given. Problems raise
        ``ValueError`` naming the field, and so does a window that cannot hold
        an event (``since`` at or after ``until``): text comes from a person,
        for whom such a window is a mistake, not a question.
        """
        values: dict[str, Any] = {}
        for name, raw in texts.items():
            if raw is None or (not isinstance(raw, str) and not raw):
                continue
            if name in _LISTS:
                items = [raw] if isinstance(raw, str) else list(raw)
                parts = [p.strip() for item in items for p in str(item).split(",")]
                values[name] = parts[0] if len(parts) == 1 else tuple(parts)
            elif name in ("since", "until") and isinstance(raw, str):
                values[name] = _iso_time(name, raw)
            elif name == "data_contains" and isinstance(raw, str):
                values[name] = _json_object(name, raw)
            elif name == "data_where":
                items = [raw] if isinstance(raw, str) else list(raw)
                values[name] = [parse_where(i) if isinstance(i, str) else i for i in items]
            else:
                values[name] = raw
        flt = filter_from(None, values)
        if flt.since is not None and flt.until is not None and flt.since >= flt.until:
            raise ValueError(
                f"since ({flt.since.isoformat()}) must be before until ({flt.until.isoformat()}): "
                "the window holds no time"
            )
        return flt

    def compiled(self) -> CompiledFilter:
        """The validated parts the library's statements are built from."""
        return self._compiled

    def matches(self, event: Event) -> bool:
        """Whether ``event`` (as stored and read back) is one this filter selects,
        decided in memory by the database's rules, with no query: for code that
        already holds events, such as a fan-out of one ``follow()`` to many readers."""
        return _matches(self, event)


class FilterKeywords(TypedDict, total=False):
    """:class:`EventFilter`'s fields as keyword arguments (the sugar of the read methods)."""

    event_type: str | Collection[str] | None
    source: str | None
    task_id: str | None
    agent_id: str | None
    since: datetime | None
    until: datetime | None
    exclude_event_type: str | Collection[str] | None
    exclude_source: str | Collection[str] | None
    data_contains: Mapping[str, Any] | None
    data_where: Sequence[tuple[str, str, Any]] | None


# Fields that take several names, as a list or comma-separated.
_LISTS = frozenset({"event_type", "exclude_event_type", "exclude_source"})


def _first_error(exc: ValidationError) -> str:
    """The message of a validation error's first problem, on one line."""
    error = exc.errors(include_url=False)[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def filter_from(flt: EventFilter | None, keywords: Mapping[str, Any]) -> EventFilter:
    """``flt``, or an :class:`EventFilter` made of ``keywords``; both at once is an error.

    Keywords that are ``None`` count as not given. A problem raises ``ValueError``
    with one line naming it; a keyword that is no filter raises ``TypeError``.
    """
    unknown = keywords.keys() - EventFilter.model_fields.keys()
    if unknown:
        raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
    given = {name: value for name, value in keywords.items() if value is not None}
    if flt is not None:
        if not isinstance(flt, EventFilter):
            raise ValueError(f"filter must be an EventFilter, not {type(flt).__name__}")
        if given:
            raise ValueError(
                f"give either filter= or filter keywords, not both (got {', '.join(given)})"
            )
        return flt
    if not given:
        return _MATCH_ALL
    try:
        return EventFilter(**given)
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None


_MATCH_ALL = EventFilter()
