"""The filter query parameters, derived from ``EventFilter.model_fields``.

Every field of :class:`event_log.EventFilter` is a query parameter of the same
name and description, so a field added there is offered here with no other
edit. Fields that hold several values (their type admits a tuple) are
repeatable; times are documented as ``date-time``. All arrive as text and are
read by :meth:`EventFilter.from_texts`, whose one-line ``ValueError`` the
router answers with a 400.

FastAPI reads a dependency's parameters from its signature, so the dependency
gets an explicit ``__signature__`` built from the fields: the OpenAPI document
then describes each parameter.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Query
from pydantic import WithJsonSchema
from pydantic.fields import FieldInfo

from event_log import EventFilter

__all__ = ["ALIASES", "FilterDep"]

# Older names clients already send, each the alias of a repeatable field: "type"
# was the only name of event_type's parameter before the fields were derived.
ALIASES: dict[str, str] = {"type": "event_type"}

_IsoText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def _kinds(annotation: Any) -> tuple[Any, ...]:
    """The members of a union annotation (the annotation itself if it is none)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _repeatable(field: FieldInfo) -> bool:
    """Whether ``field`` holds several values (its type admits a tuple)."""
    return any(get_origin(kind) is tuple for kind in _kinds(field.annotation))


def _parameter(name: str, field: FieldInfo, description: str) -> inspect.Parameter:
    """``field`` as the text a query string carries: a list if it is repeatable."""
    kind: Any
    if _repeatable(field):
        kind, description = list[str] | None, f"{description} Repeatable."
    elif datetime in _kinds(field.annotation):
        kind = _IsoText | None
    else:
        kind = str | None
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind, Query(description=description)],
    )


def _signature() -> inspect.Signature:
    fields = EventFilter.model_fields
    parameters = []
    for name, field in fields.items():
        description = field.description or ""
        parameters.append(_parameter(name, field, description))
        for alias, target in ALIASES.items():
            if target == name:
                parameters.append(_parameter(alias, field, f"Same as `{name}`. {description}"))
    return inspect.Signature(parameters, return_annotation=EventFilter)


async def _event_filter(**texts: str | Sequence[str] | None) -> EventFilter:
    """The filter the query string describes; ValueError (a 400) names a bad field."""
    for alias, target in ALIASES.items():
        given = texts.pop(alias, None)
        if given:  # both names' values count, as for one name repeated
            texts[target] = [*given, *(texts.get(target) or ())]
    return EventFilter.from_texts(texts)


_event_filter.__signature__ = _signature()  # type: ignore[attr-defined]


FilterDep = Annotated[EventFilter, Depends(_event_filter)]
