"""The page's filter form, generated from ``EventFilter.model_fields``.

The API's query parameters come from the same fields (see ``_query``), so a
field added to :class:`event_log.EventFilter` shows up in the form with no
other edit: its name, its description (as the input's title and hint), an
example taken from the description, and how it is entered, all read off the
field's declaration:

* a field whose annotation admits a tuple of texts (event types, sources) is
  one input of comma-separated names, as ``EventFilter.from_texts`` reads them;
* a field whose annotation admits a tuple of anything else (``data_where``'s
  conditions) is one input per value, repeatable;
* a field that admits a ``datetime`` is an ISO 8601 text input;
* anything else is one text input.

Fields are grouped by what they are: times under "Time range", ``data_*``
under "Data", ``exclude_*`` under "Exclude", the rest on the form's first row.
Each input is named after the field, or after the field's short alias when
the API has one (``type`` for ``event_type``), the name the page's URLs use.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, Literal, Protocol, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from event_log import EventFilter

from ._query import ALIASES

__all__ = ["FilterForm", "FormField", "form_fields"]

Kind = Literal["text", "names", "items", "time"]

# Group titles in the order they are shown; "" is the form's first row.
_GROUPS = ("", "Time range", "Data", "Exclude")
_EXAMPLE = re.compile(r"e\.g\. `([^`]+)`")
_CODE = re.compile(r"`([^`]+)`")


class _Query(Protocol):
    """What the form reads of a query string (Starlette's ``QueryParams``)."""

    def getlist(self, key: str) -> list[str]: ...


def _kinds(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _kind(field: FieldInfo) -> Kind:
    kinds = _kinds(field.annotation)
    for kind in kinds:
        if get_origin(kind) is tuple:
            items = [a for a in get_args(kind) if a is not Ellipsis]
            return "names" if items and all(a is str for a in items) else "items"
    if datetime in kinds:
        return "time"
    return "text"


def _group(name: str, kind: Kind) -> str:
    if kind == "time":
        return "Time range"
    if name.startswith("data_"):
        return "Data"
    if name.startswith("exclude_"):
        return "Exclude"
    return ""


def _label(name: str, group: str) -> str:
    prefix = {"Data": "data_", "Exclude": "exclude_"}.get(group, "")
    words = name.removeprefix(prefix).replace("_", " ")
    words = re.sub(r"\bid\b", "ID", words)
    return words[:1].upper() + words[1:]


def _example(description: str, kind: Kind) -> str:
    """The description's own example (``e.g. `...```, else its first code span)."""
    found = _EXAMPLE.search(description) or _CODE.search(description)
    if found:
        return found.group(1)
    if kind == "time":
        return datetime.now(UTC).strftime("%Y-%m-%dT00:00Z")
    return ""


@dataclass(frozen=True, slots=True)
class FormField:
    """One :class:`EventFilter` field as the form shows it."""

    name: str
    param: str  # the query parameter its input sends
    label: str
    description: str
    kind: Kind
    group: str
    example: str

    @property
    def repeatable(self) -> bool:
        return self.kind in ("names", "items")

    def values(self, query: _Query) -> list[str]:
        """The non-blank values the query gives this field, under either of its names."""
        given = [v for key in dict.fromkeys((self.param, self.name)) for v in query.getlist(key)]
        if self.kind == "names":  # "a, b" and a=...&a=... mean the same
            return [part.strip() for v in given for part in v.split(",") if part.strip()]
        values = [v.strip() for v in given if v.strip()]
        return values if self.repeatable else values[-1:]


def form_fields() -> list[FormField]:
    """Every field of ``EventFilter.model_fields``, in the order the form shows them."""
    aliases = {target: alias for alias, target in ALIASES.items()}
    fields = []
    for name, info in EventFilter.model_fields.items():
        kind = _kind(info)
        group = _group(name, kind)
        description = info.description or ""
        fields.append(
            FormField(
                name=name,
                param=aliases.get(name, name),
                label=_label(name, group),
                description=description,
                kind=kind,
                group=group,
                example=_example(description, kind),
            )
        )
    return sorted(fields, key=lambda f: _GROUPS.index(f.group))


def _hint(description: str) -> str:
    """The description as HTML, its `code` spans as <code>."""
    pieces = description.split("`")
    if len(pieces) % 2 == 0:  # an unpaired backtick: plain text
        return escape(description)
    return "".join(
        f"<code>{escape(p)}</code>" if at % 2 else escape(p) for at, p in enumerate(pieces)
    )


@dataclass(frozen=True, slots=True)
class FilterForm:
    """The filter fields with the values a query string gave them."""

    fields: tuple[FormField, ...]
    values: Mapping[str, Sequence[str]]

    @classmethod
    def from_query(cls, query: _Query) -> FilterForm:
        fields = tuple(form_fields())
        return cls(fields, {f.name: f.values(query) for f in fields})

    def filter(self) -> EventFilter:
        """The filter the values describe; ``ValueError`` (one line) names a bad field."""
        texts: dict[str, str | Sequence[str] | None] = {}
        for field in self.fields:
            values = self.values[field.name]
            if values:
                texts[field.name] = list(values) if field.repeatable else values[0]
        return EventFilter.from_texts(texts)

    def field_named_in(self, message: str) -> str | None:
        """The field an error message is about: the one it starts with."""
        for field in sorted(self.fields, key=lambda f: -len(f.name)):
            if re.match(rf"{re.escape(field.name)}\b", message):
                return field.name
        return None

    def html(self, *, invalid: str | None = None) -> str:
        """The inputs, grouped; ``invalid`` names a field to mark as the error's."""
        rows: dict[str, list[str]] = {group: [] for group in _GROUPS}
        for field in self.fields:
            rows[field.group].append(self._field(field, field.name == invalid))
        more = [g for g in _GROUPS[1:] if rows[g]]
        filled = sum(
            1 for f in self.fields if f.group and (self.values[f.name] or f.name == invalid)
        )
        out = ['<div class="fields">', *rows[""], "</div>"]
        if more:
            count = f' <span class="count">({filled} set)</span>' if filled else ""
            out.append(
                f'<details id="more-filters"{" open" if filled else ""}>'
                f"<summary>More filters: {escape(', '.join(g.lower() for g in more))}"
                f'{count}</summary><div class="groups">'
            )
            for group in more:
                out.append(
                    f'<fieldset data-group="{escape(group)}"><legend>{escape(group)}</legend>'
                )
                out += rows[group]
                out.append("</fieldset>")
            out.append("</div></details>")
        return "\n".join(out)

    def _field(self, field: FormField, invalid: bool) -> str:
        values = list(self.values[field.name])
        mark = ' aria-invalid="true"' if invalid else ""
        common = (
            f' placeholder="{escape(field.example)}" title="{escape(field.description)}"'
            f' autocomplete="off" spellcheck="false"{mark}'
        )
        attrs = f'data-field="{escape(field.name)}" data-kind="{field.kind}"'
        hint = f'<small class="hint">{_hint(field.description)}</small>' if field.group else ""
        label = f'<span class="name">{escape(field.label)}</span>'
        if field.kind == "items":
            label_id = f"label-{field.name}"
            inputs = "".join(
                f'<input name="{escape(field.param)}" value="{escape(value)}"'
                f' aria-labelledby="{label_id}"{common}>'
                for value in [*values, ""]
            )
            return (
                f'<div class="field multi" {attrs} role="group" aria-labelledby="{label_id}">'
                f'<span class="name" id="{label_id}">{escape(field.label)}</span>{inputs}'
                f'<button type="button" class="plain add" hidden>+ another</button>{hint}</div>'
            )
        value = ", ".join(values) if field.kind == "names" else "".join(values)
        return (
            f'<label class="field" {attrs}>{label}'
            f'<input name="{escape(field.param)}" value="{escape(value)}"{common}>{hint}</label>'
        )
