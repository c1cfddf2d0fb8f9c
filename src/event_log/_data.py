"""Event data: checked, converted the way pydantic's JSON mode converts it, and encoded
once; data that cannot be stored is refused with the path of the value at fault.

pydantic-core does both conversions in Rust; the Python here only checks what
JSON would otherwise hide (non-str keys, NaN, NUL) and, on the failure path
only, walks the data again to name the value (``data.a.b[1] is NaN: ...``).
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from ._errors import InvalidEventError
from ._redact import Redactor

__all__ = ["encode_data", "storable_text"]

# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def storable_text(value: str) -> bool:
    """Whether both backends can store (and so compare) this text: no NUL, valid UTF-8."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


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
