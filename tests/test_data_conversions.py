"""What ``data`` becomes when logged (pydantic's JSON mode), on every backend; how a refusal
names the value at fault; and how ``data_where`` compares the text some values become."""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from event_log import EventFilter, EventLogger, InvalidEventError


class Colour(enum.Enum):
    RED = "red"


class Size(enum.StrEnum):
    LARGE = "large"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: float
    y: float


AT = datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)


def conversions() -> dict[str, tuple[Any, Any]]:
    """What you pass (as a value in data) -> what the event holds, returned and read back.

    A function: a generator can be logged once only.
    """
    return {
        "datetime_utc": (AT, "2026-03-01T12:00:05.123456Z"),
        "datetime_whole_second": (datetime(2026, 3, 1, 12, tzinfo=UTC), "2026-03-01T12:00:00Z"),
        "datetime_offset": (
            datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-03-01T14:00:00+02:00",  # kept in its own offset, not converted to UTC
        ),
        "datetime_naive": (datetime(2026, 3, 1, 12, 0), "2026-03-01T12:00:00"),
        "date": (date(2026, 3, 1), "2026-03-01"),
        "time": (time(12, 30, 5), "12:30:05"),
        "timedelta": (timedelta(hours=1, minutes=30), "PT1H30M"),
        "decimal": (Decimal("1.5"), "1.5"),
        "decimal_trailing_zero": (Decimal("1.50"), "1.50"),
        "decimal_exponent": (Decimal("1E+3"), "1E+3"),
        "decimal_nan": (Decimal("NaN"), "NaN"),  # text, so it is allowed (a float NaN is not)
        "uuid": (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        "enum": (Colour.RED, "red"),
        "str_enum": (Size.LARGE, "large"),
        "int_enum": (Level.HIGH, 3),
        "set": ({3, 1, 2}, [1, 2, 3]),  # a list, in the set's iteration order
        "frozenset": (frozenset({7}), [7]),
        "tuple": ((1, "a"), [1, "a"]),
        "deque": (collections.deque([1, 2]), [1, 2]),
        "generator": ((n * n for n in range(3)), [0, 1, 4]),
        "bytes": ("caf\u00e9".encode(), "caf\u00e9"),  # UTF-8 bytes become their text
        "bytearray": (bytearray(b"ab"), "ab"),
        "path": (Path("/var/log/x.txt"), "/var/log/x.txt"),
        "dataclass": (Point(1.0, 2.5), {"x": 1.0, "y": 2.5}),
        "big_int": (2**70, 2**70),
        "float": (0.1, 0.1),
        "str_enum_key": ({Size.LARGE: 1}, {"large": 1}),
        "nested": (
            {"at": [AT, (Decimal("2"), {Level.HIGH})], "tags": {"only"}},
            {"at": ["2026-03-01T12:00:05.123456Z", ["2", [3]]], "tags": ["only"]},
        ),
    }


async def test_what_data_becomes_when_logged_and_read_back(log: EventLogger) -> None:
    cases = conversions()
    data = {name: value for name, (value, _) in cases.items()}
    expected = {name: stored for name, (_, stored) in cases.items()}
    event = await log.log_event("test.converted", "conversions", data=data)
    assert event.data == expected
    stored = await log.get_event(event.id)
    assert stored is not None
    assert stored.data == expected
    found = await log.list_events(data_contains={"decimal": "1.5"})
    assert [e.id for e in found.events] == [event.id]


@pytest.fixture
async def memory_log() -> AsyncIterator[EventLogger]:
    """Refusals happen before any database is asked: one backend shows them."""
    async with EventLogger.open("sqlite+aiosqlite://") as logger:
        yield logger


def nested(levels: int) -> Any:
    """A value ``levels`` deep counting itself: ``[[...[1]...]]``, the 1 the last level."""
    value: Any = 1
    for _ in range(levels - 1):
        value = [value]
    return value


def cycle() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


REFUSALS = [
    pytest.param({"a": {"b": [1, float("nan")]}}, "data.a.b[1] is NaN: JSON has no NaN", id="nan"),
    pytest.param({"x": (1, [math.inf])}, "data.x[1][0] is Infinity", id="infinity-in-tuple"),
    pytest.param({"p": Point(0.0, -math.inf)}, "data.p.y is -Infinity", id="inf-in-dataclass"),
    pytest.param(
        {"a": [{"ok": 1}, {2: "x"}]},
        "data.a[1] has a key of type int (2); keys must be strings",
        id="int-key",
    ),
    pytest.param(
        {"a": {"b": object()}},
        "data.a.b is of type object, which is not JSON-serialisable",
        id="object",
    ),
    pytest.param(
        {"files": [b"ok", b"\xff\xfe"]},
        "data.files[1] is bytes that are not UTF-8 text",
        id="bytes-not-utf8",
    ),
    pytest.param(
        {"a b": {"c": "x\x00y"}}, 'data["a b"].c contains a NUL character', id="nul-odd-key"
    ),
    pytest.param({"k": {"n\x00": 1}}, 'data.k["n\\u0000"] (a key) contains a NUL', id="nul-key"),
    pytest.param(
        {"s": "\ud800"}, "data.s is not valid Unicode (it holds a lone surrogate)", id="surrogate"
    ),
    pytest.param({"loop": cycle()}, "data.loop[1] refers back to an object or array", id="cycle"),
    pytest.param(
        {"deep": nested(255)},
        "data.deep[0][0][0][0][0]...[0][0] is nested more than 255 levels deep",
        id="too-deep",
    ),
]


@pytest.mark.parametrize(("data", "message"), REFUSALS)
async def test_a_refusal_names_the_path_of_the_value_at_fault(
    memory_log: EventLogger, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidEventError) as refused:
        await memory_log.log_event("test.refused", "conversions", data=data)
    text = str(refused.value)
    assert text.startswith(message), text
    assert "\n" not in text
    with pytest.raises(InvalidEventError, match="^event #1: " + re.escape(message)):
        await memory_log.log_events(
            [
                {"event_type": "test.ok", "source": "conversions", "data": {"fine": 1}},
                {"event_type": "test.refused", "source": "conversions", "data": data},
            ]
        )
    assert await memory_log.count_events() == 0


async def test_data_contains_refusals_name_data_contains(memory_log: EventLogger) -> None:
    with pytest.raises(ValueError, match=r"^data_contains\.a\[0\] is NaN"):
        await memory_log.list_events(data_contains={"a": [math.nan]})


async def test_the_deepest_data_stored_is_255_levels(memory_log: EventLogger) -> None:
    """data is the first level; pydantic-core serialises nothing deeper (see the refusal)."""
    event = await memory_log.log_event("test.deep", "conversions", data={"deep": nested(254)})
    assert event.data == {"deep": nested(254)}


async def test_a_secret_is_masked_before_it_is_serialised(memory_log: EventLogger) -> None:
    event = await memory_log.log_event("test.masked", "c", data={"a": [{"token": object()}]})
    assert event.data == {"a": [{"token": "[REDACTED]"}]}


# -- data_where on the text some values become ---------------------------------------------

SEEDED: dict[str, dict[str, Any]] = {
    "decimal": {"price": Decimal("1.5")},  # stored as the string "1.5"
    "decimal_ten": {"price": Decimal("10.0")},  # "10.0", which sorts before "9" as text
    "decimal_zeros": {"price": Decimal("1.50")},  # "1.50", not equal to "1.5" as text
    "float": {"price": 1.5},  # a JSON number
    "int_cents": {"price": 150},
    "at_utc": {"at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC)},  # "2026-03-01T12:00:00Z"
    "at_later_utc": {"at": datetime(2026, 3, 1, 12, 30, tzinfo=UTC)},
    "at_fraction": {"at": datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)},
    "at_offset": {"at": datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))},
    "at_text": {"at": "2026-03-01T12:15:00Z"},
}

# A data_where and the seeded events it selects (same answers on every backend).
WHERE: list[tuple[tuple[str, str, Any], set[str]]] = [
    # A number never matches a string, whatever the operator (!= included).
    (("price", ">", 1), {"float", "int_cents"}),
    (("price", "=", 1.5), {"float"}),
    (("price", "!=", 1), {"float", "int_cents"}),
    # A Decimal is stored as text: compare it with text, character by character.
    (("price", "=", "1.5"), {"decimal"}),
    (("price", ">", "1"), {"decimal", "decimal_ten", "decimal_zeros"}),
    (("price", ">", "9"), set()),  # "10.0" < "9" as text
    (("price", "<", "2"), {"decimal", "decimal_ten", "decimal_zeros"}),
    # ISO text in UTC with the same precision orders as time does ...
    (("at", ">", "2026-03-01T12:10:00Z"), {"at_later_utc", "at_text", "at_offset"}),
    (("at", "=", "2026-03-01T12:00:00Z"), {"at_utc"}),
    # ... but 12:00:00.5 sorts before 12:00:00Z ("." < "Z"), and an offset is not
    # converted: 13:00+02:00 (11:00 UTC) sorts after 12:00Z.
    (("at", ">", "2026-03-01T12:00:00Z"), {"at_later_utc", "at_text", "at_offset"}),
    (("at", "<", "2026-03-01T12:00:00Z"), {"at_fraction"}),
]


async def test_data_where_compares_stored_text_as_text(log: EventLogger) -> None:
    events = await log.log_events(
        [
            {"event_type": "test.where", "source": name, "data": data}
            for name, data in SEEDED.items()
        ]
    )
    assert {e.source: e.data for e in events}["decimal"] == {"price": "1.5"}
    assert {e.source: e.data for e in events}["at_fraction"] == {
        "at": "2026-03-01T12:00:00.500000Z"
    }
    wrong = []
    for condition, expected in WHERE:
        page = await log.list_events(data_where=[condition], limit=100)
        found = {e.source for e in page.events}
        counted = await log.count_events(filter=EventFilter(data_where=[condition]))
        if found != expected or counted != len(expected):
            wrong.append((condition, sorted(found), counted, sorted(expected)))
    assert wrong == []
    # On the command line and in query strings a value is JSON when it parses:
    # quote it to compare with the text a Decimal became.
    as_text = EventFilter.from_texts({"data_where": ['price="1.5"']})
    as_number = EventFilter.from_texts({"data_where": ["price=1.5"]})
    assert [e.source for e in (await log.list_events(filter=as_text)).events] == ["decimal"]
    assert [e.source for e in (await log.list_events(filter=as_number)).events] == ["float"]


@pytest.mark.parametrize(
    "value",
    [Decimal("1.5"), datetime(2026, 3, 1, tzinfo=UTC), date(2026, 3, 1)],
    ids=["decimal", "datetime", "date"],
)
async def test_data_where_takes_json_values_only(memory_log: EventLogger, value: object) -> None:
    """A Decimal or datetime operand is refused, not converted: say the text you compare."""
    with pytest.raises(ValueError, match=f"not {type(value).__name__}"):
        await memory_log.list_events(data_where=[("price", "=", value)])


async def test_data_contains_converts_like_data(log: EventLogger) -> None:
    """data_contains goes through the same conversion, so a Decimal finds its text."""
    await log.log_events(
        [
            {"event_type": "test.where", "source": name, "data": data}
            for name, data in SEEDED.items()
        ]
    )
    found = await log.list_events(data_contains={"price": Decimal("1.5")})
    assert [e.source for e in found.events] == ["decimal"]
    found = await log.list_events(data_contains={"at": datetime(2026, 3, 1, 12, tzinfo=UTC)})
    assert [e.source for e in found.events] == ["at_utc"]
