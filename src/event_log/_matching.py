"""Whether one event matches an :class:`EventFilter`, decided in memory.

The database decides this for every read; a live fan-out (one tail read once,
many subscribers with filters of their own) decides it here instead, once per
event and distinct filter, without a query. The answers are the database's:
the same fields, and ``data_contains``/``data_where`` by jsonb's rules as
``_data_filters`` describes them (a test holds this module to the backends).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._data_filters import COMPARISONS, Comparison

if TYPE_CHECKING:
    from ._filters import EventFilter
    from ._models import Event

__all__ = ["matches"]


def matches(flt: EventFilter, event: Event) -> bool:
    """Whether ``event`` (as stored and read back) is one ``flt`` selects."""
    compiled = flt.compiled()
    if compiled.types is not None and not compiled.types.matches(event.event_type):
        return False
    if compiled.exclude_types is not None and compiled.exclude_types.matches(event.event_type):
        return False
    if event.source in compiled.exclude_sources:
        return False
    if flt.source is not None and event.source != flt.source:
        return False
    if flt.task_id is not None and event.task_id != flt.task_id:
        return False
    if flt.agent_id is not None and event.agent_id != flt.agent_id:
        return False
    if flt.since is not None and event.timestamp < flt.since:
        return False
    if flt.until is not None and event.timestamp >= flt.until:
        return False
    data = compiled.data
    if data is None:
        return True
    if data.contains is not None and not _contains(event.data, data.contains):
        return False
    return all(_compares(event.data, comparison) for comparison in data.where)


def _kind(value: Any) -> str:
    """The JSON type of a decoded value (a bool is not a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _numbers(value: int | float, wanted: int | float) -> tuple[Any, Any]:
    """Two JSON numbers as jsonb compares them: the decimals their JSON texts name.

    A float is written as its shortest text (``repr``), which jsonb keeps as an exact
    decimal, and PostgreSQL gives a whole one back as an integer: ``1e23`` returns as
    ``10**23``, which Python finds unequal to the float ``1e23`` (its binary value is
    ``99999999999999991611392``). Two ints, or two floats (whose shortest texts are
    in their order), compare as they are.
    """
    if isinstance(value, float) == isinstance(wanted, float):
        return value, wanted
    return _decimal(value), _decimal(wanted)


def _decimal(number: int | float) -> Decimal:
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def _contains(document: Any, wanted: Any) -> bool:
    """Whether ``document @> wanted`` holds by jsonb's rules: objects by their keys,
    recursively; an array contains another when each of the other's elements is
    contained in one of its own; scalars equal with the same JSON type."""
    if _kind(document) != _kind(wanted):
        return False
    if isinstance(wanted, dict):
        return all(
            key in document and _contains(document[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return all(any(_contains(item, element) for item in document) for element in wanted)
    if _kind(wanted) == "number":
        document, wanted = _numbers(document, wanted)
    return bool(document == wanted)


def _compares(document: Any, comparison: Comparison) -> bool:
    """``data_where``: the top-level key holds a value of the operand's JSON type for
    which the comparison holds (a missing key or another type never matches)."""
    if not isinstance(document, dict) or comparison.key not in document:
        return False
    value = document[comparison.key]
    wanted = comparison.value
    if _kind(value) != _kind(wanted):
        return False
    if isinstance(wanted, int | float) and not isinstance(wanted, bool):
        value, wanted = _numbers(value, wanted)
    return bool(COMPARISONS[comparison.op](value, wanted))
