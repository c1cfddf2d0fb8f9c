"""The filter options, made from :class:`event_log.EventFilter`'s fields: declared once.

Every field becomes an option named after it (``event_type`` is
``--event-type``), its help the field's description; a field that takes
several values is repeatable (and type or source names may also be
comma-separated); times take the command line's own forms as well (relative
like ``15m``, no offset meaning UTC; see ``_times``), worked out into
datetimes before the text reaches :meth:`EventFilter.from_texts`. Each
option's value is checked on its own, so a mistake is reported against its
option; the filter is then made from all of them at once. A field added to
``EventFilter`` appears in ``query``, ``tail`` and ``export`` with no edit
here. The short and older spellings people know stay: ``-t``/``--type``,
``-s``, ``-T``/``--exclude-type``, ``--where``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from event_log import EventFilter

from ._times import TimeParam

__all__ = ["filter_from_options", "filter_options"]

F = TypeVar("F", bound=Callable[..., Any])

# Spellings kept beside the generated --field-name (short ones first).
_ALIASES: dict[str, tuple[str, ...]] = {
    "event_type": ("-t", "--type"),
    "source": ("-s",),
    "exclude_event_type": ("-T", "--exclude-type"),
    "data_where": ("--where",),
}
_METAVARS = {
    "event_type": "TYPE",
    "exclude_event_type": "TYPE",
    "exclude_source": "SOURCE",
    "data_contains": "JSON",
    "data_where": "'KEY OP VALUE'",
}
_TIME_HELP = " Here also relative, like 15m, 2h, 7d; without an offset it is UTC."
_MANY_HELP = " Repeatable."
_NAMES_HELP = " Repeat or comma-separate for several."


def _kinds(annotation: Any) -> set[type]:
    """The classes a field's annotation allows (``str | tuple[str, ...] | None`` gives
    ``{str, tuple, NoneType}``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {kind for arg in typing.get_args(annotation) for kind in _kinds(arg)}
    origin = typing.get_origin(annotation)
    return {origin if isinstance(origin, type) else annotation}


def _help(description: str | None) -> str:
    # Descriptions are Markdown for the web API's schema: no backticks in a terminal.
    return (description or "").replace("`", "'")


def _check(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == ():
            return None
        try:
            EventFilter.from_texts({name: value})
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    return check


def _option(name: str) -> Callable[[F], F]:
    field = EventFilter.model_fields[name]
    kinds = _kinds(field.annotation)
    many = tuple in kinds
    decls = [*_ALIASES.get(name, ()), f"--{name.replace('_', '-')}", name]
    text = _help(field.description)
    param_type: Any = None  # a click.ParamType (generic only in newer click)
    if datetime in kinds:
        param_type = TimeParam()
        text += _TIME_HELP
    elif many:
        text += _NAMES_HELP if str in kinds else _MANY_HELP
    return click.option(
        *dict.fromkeys(decls),
        type=param_type,
        multiple=many,
        callback=_check(name),
        metavar=_METAVARS.get(name, name.upper()),
        help=text,
    )


def filter_options(func: F) -> F:
    """One option per :class:`EventFilter` field, in the model's order."""
    for name in reversed(list(EventFilter.model_fields)):
        func = _option(name)(func)
    return func


def filter_from_options(options: dict[str, Any]) -> EventFilter:
    """The filter the options given make; their values are taken out of ``options``.
    Problems of the options together are a usage error."""
    texts: Mapping[str, str | Sequence[str] | None] = {
        name: options.pop(name, None) for name in EventFilter.model_fields
    }
    try:
        return EventFilter.from_texts(texts)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
