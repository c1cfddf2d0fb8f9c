"""data_contains / data_where against a pure-Python model of jsonb, on every backend.

Hypothesis draws small documents and filters from a deliberately narrow
alphabet (so that filters often match) and checks that each backend selects
exactly the events the reference functions below select. The reference is
written from PostgreSQL's documentation of jsonb containment ("8.14.3. jsonb
Containment and Existence"), not from the SQL the library builds.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from event_log import EventFilter, EventLogger
from event_log._data_filters import COMPARISONS, OPERATORS
from event_log._matching import matches

EXAMPLES = 60


def kind(value: Any) -> str:
    """The JSON type of a decoded value (bool before int: True is not a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def contains(doc: Any, sub: Any) -> bool:
    """jsonb ``doc @> sub``."""
    if kind(doc) != kind(sub):
        return False
    if isinstance(sub, dict):
        return all(key in doc and contains(doc[key], value) for key, value in sub.items())
    if isinstance(sub, list):
        # Every element of sub is contained in some element of doc: scalars equal to
        # a scalar, containers contained in a container of the same kind.
        return all(any(contains(item, element) for item in doc) for element in sub)
    return bool(doc == sub)


def compares(doc: Any, key: str, op: str, value: Any) -> bool:
    """``data_where`` on one document: same JSON type, then the comparison."""
    if not isinstance(doc, dict) or key not in doc or kind(doc[key]) != kind(value):
        return False
    return bool(COMPARISONS[op](doc[key], value))


KEYS = ["a", "b", "a.b", 'q"x', "", "ü k"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.5, 1.0, -2.0, 2**40 + 0.5]),
    st.sampled_from(["", "a", "b", "B", "é", "ab", "1", "true"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=8,
)
# Top-level values mostly scalars, which data_where compares.
documents = st.none() | st.dictionaries(
    st.sampled_from(KEYS), st.one_of(scalars, scalars, values), max_size=4
)


def sub_of(doc: Any) -> st.SearchStrategy[Any]:
    """Part of ``doc``: a filter likely to match it (and, after edits, its neighbours)."""
    if isinstance(doc, dict) and doc:
        keys = st.lists(st.sampled_from(sorted(doc)), unique=True, max_size=len(doc))
        return keys.flatmap(
            lambda chosen: st.fixed_dictionaries({k: sub_of(doc[k]) for k in chosen})
        )
    if isinstance(doc, list) and doc:
        return st.lists(st.sampled_from(doc).flatmap(sub_of), max_size=2)
    return st.just(doc)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Any], dict[str, Any] | None, list[Any]]:
    docs = draw(st.lists(documents, min_size=1, max_size=6))
    objects = [d for d in docs if isinstance(d, dict)]
    source = st.dictionaries(st.sampled_from(KEYS), values, max_size=2)
    if objects:  # mostly part of a document, so that filters often match
        part = st.sampled_from(objects).flatmap(sub_of)
        source = st.one_of(source, part, part, part)
    contains_filter = draw(st.one_of(st.none(), source, source))
    pairs = [(k, v) for d in objects for k, v in d.items() if kind(v) not in ("object", "array")]
    where: list[Any] = []
    conditions = st.integers(0, 1) if contains_filter is not None else st.integers(1, 2)
    for _ in range(draw(conditions)):
        key, value = draw(st.tuples(st.sampled_from(KEYS), scalars))
        usually = draw(st.integers(0, 3)) > 0
        if pairs and usually:
            key, value = draw(st.sampled_from(pairs))  # a key and value some event has
        ops = ("=", "!=") if value is None or isinstance(value, bool) else OPERATORS
        where.append((key, draw(st.sampled_from(ops)), value))
    return docs, contains_filter, where


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
async def test_backends_agree_with_the_reference(
    log: EventLogger, case: tuple[list[Any], dict[str, Any] | None, list[Any]]
) -> None:
    docs, contains_filter, where = case
    tag = uuid.uuid4().hex  # this example's events, among those of earlier examples
    await log.log_events(
        [
            {"event_type": "bid.submitted", "source": tag, "task_id": str(i), "data": doc}
            for i, doc in enumerate(docs)
        ]
    )
    expected = {
        str(i)
        for i, doc in enumerate(docs)
        if (contains_filter is None or contains(doc, contains_filter))
        and all(compares(doc, *condition) for condition in where)
    }
    event("some match" if expected else "none match")
    event("some do not" if len(expected) < len(docs) else "all match")
    filters: dict[str, Any] = {
        "source": tag,
        "data_contains": contains_filter,
        "data_where": where or None,
    }
    page = await log.list_events(limit=1000, **filters)
    assert {e.task_id for e in page.events} == expected, (docs, contains_filter, where)
    # The in-memory decision (the live stream's fan-out) agrees, on the events as read back.
    stored = (await log.list_events(limit=1000, source=tag)).events
    flt = EventFilter(**{name: value for name, value in filters.items() if value is not None})
    assert {e.task_id for e in stored if matches(flt, e)} == expected
    assert await log.count_events(**filters) == len(expected)


def test_the_reference_follows_postgresql_documentation() -> None:
    # The examples of the PostgreSQL manual, section 8.14.3 (objects at the top level).
    assert contains({"product": "PostgreSQL", "version": 9.4, "jsonb": True}, {"version": 9.4})
    assert contains({"a": [1, 2, 3]}, {"a": [1, 3]})
    assert contains({"a": [1, 2, 3]}, {"a": [3, 1, 3]})
    assert not contains({"a": [1, 2, [1, 3]]}, {"a": [1, 3]})
    assert contains({"a": [1, 2, [1, 3]]}, {"a": [[1, 3]]})
    assert not contains({"foo": {"bar": "baz"}}, {"bar": "baz"})
    assert contains({"foo": {"bar": "baz"}}, {"foo": {}})
    assert not contains({"a": [1, 2]}, {"a": 1})  # the scalar exception is top level only
    assert not contains({"a": True}, {"a": 1})
    assert contains({"a": 1}, {"a": 1.0})
    assert not contains(None, {})
    assert compares({"a": "b"}, "a", "<", "é")
    assert not compares({"a": 1}, "a", "!=", "1")
