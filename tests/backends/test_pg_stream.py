"""PostgreSQL's streamed ``log_events``: rows validated chunk by chunk into one text COPY.

A batch larger than one statement is validated while the server stores the
chunks before it (``_copy``, ``PostgresSink.insert_stream``). These tests
provoke what can go wrong half-way: an invalid event, a failing row, a lost
connection, and values the COPY text format must escape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from event_log import EventLogger, InvalidEventError, StorageError
from event_log._models import Row, prepare_event
from event_log.backends.postgresql._copy import copy_text
from event_log.backends.postgresql._sink import PG_STATEMENT_MAX_ROWS
from pg_helpers import cut, make_batch, pg_sink, server_pid

pytestmark = pytest.mark.postgres

STREAMED = 3 * PG_STATEMENT_MAX_ROWS  # large enough to take the streamed path


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_streamed_batch_is_stored_whole_as_one_transaction_in_order(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        assert pg_sink(log).streams(STREAMED)
        first = await log.log_events(make_batch(STREAMED))
        second = await log.log_events(iter(make_batch(STREAMED + 1)))  # any iterable
        written = first + second
        assert log.stats.written == len(written)
        for event in written[:: PG_STATEMENT_MAX_ROWS // 2]:
            assert await log.get_event(event.id) == event
    conn = await asyncpg.connect(_dsn(postgres_driver_url))
    try:
        stored = await conn.fetch("SELECT id, xid FROM event_log ORDER BY xid, id")
    finally:
        await conn.close()
    assert [r["id"] for r in stored] == [e.id for e in written]
    xids = [r["xid"] for r in stored]
    assert xids == [xids[0]] * len(first) + [xids[-1]] * len(second)
    assert xids[0] < xids[-1]


async def test_an_invalid_event_half_way_rolls_back_what_was_streamed(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        await log.log_event("task.created", "c")
        pid = server_pid(pg_sink(log))
        batch = make_batch(STREAMED)
        batch[STREAMED - 5] = {"event_type": "Not A Type", "source": "s"}
        with pytest.raises(InvalidEventError, match=f"event #{STREAMED - 5}: event_type"):
            await log.log_events(batch)
        assert await log.count_events() == 1  # the chunks already sent were rolled back
        assert log.stats.written == 1
        assert log.stats.failed == 0  # never accepted, so not a failed write
        assert log.stats.queued == 0
        assert server_pid(pg_sink(log)) == pid  # rolled back, not reconnected
        await log.log_events(make_batch(STREAMED))
        assert await log.count_events() == 1 + STREAMED


async def test_a_row_the_server_refuses_fails_the_batch_as_a_storage_error(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        await log.log_event("task.created", "c")
        await _admin(
            postgres_driver_url,
            """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.source = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;
                RETURN NEW;
            END $$""",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON event_log "
            "FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        pid = server_pid(pg_sink(log))
        batch = make_batch(STREAMED)
        batch[PG_STATEMENT_MAX_ROWS] = {"event_type": "tool.called", "source": "poison"}
        with pytest.raises(StorageError, match="poisoned row"):
            await log.log_events(batch)
        assert await log.count_events() == 1
        assert log.stats.failed == STREAMED
        assert log.stats.queued == 0
        assert server_pid(pg_sink(log)) == pid
        # An invalid event later in the batch still wins: all are validated.
        batch[STREAMED - 1] = {"event_type": "BAD", "source": "s"}
        with pytest.raises(InvalidEventError, match=f"event #{STREAMED - 1}"):
            await log.log_events(batch)
        assert log.stats.failed == STREAMED
        await log.log_events(make_batch(STREAMED))
        assert await log.count_events() == 1 + STREAMED


async def test_a_connection_lost_half_way_is_replaced_and_the_batch_stored_once(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        first = await log.log_event("task.created", "c")
        sink = pg_sink(log)
        pid = server_pid(sink)
        rows = [prepare_event("tool.called", "s", max_data_bytes=100).row for _ in range(STREAMED)]

        def chunks() -> Iterator[Sequence[Row]]:
            yield rows[:100]
            cut(sink)  # the connection dies with 100 rows sent
            yield rows[100:]

        await sink.insert_stream(STREAMED, chunks())
        assert server_pid(sink) != pid
        stored = await log.list_events(limit=STREAMED + 2)
        assert sorted(e.id for e in stored.events) == sorted([first.id] + [r[0] for r in rows])


async def test_a_chunk_iterator_making_fewer_rows_than_announced_stores_none(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        sink = pg_sink(log)
        rows = [prepare_event("tool.called", "s", max_data_bytes=100).row for _ in range(STREAMED)]
        with pytest.raises(
            RuntimeError, match=f"announced {STREAMED + 1} rows but made {STREAMED}"
        ):
            await sink.insert_stream(STREAMED + 1, iter([rows]))
        assert await log.count_events() == 0
        await log.log_events(make_batch(STREAMED))
        assert await log.count_events() == STREAMED


async def test_a_streamed_batch_into_a_partitioned_table_routes_old_rows_to_the_default(
    partitioned_url: str,
) -> None:
    now = datetime.now(UTC)
    # Today has a day partition; 400 days ago only the DEFAULT one does.
    days = [now, now - timedelta(days=400)]
    batch = [
        {"event_type": "tool.called", "source": "s", "timestamp": days[i % 2], "data": {"i": i}}
        for i in range(STREAMED)
    ]
    async with EventLogger.open(partitioned_url) as log:
        written = await log.log_events(batch)
        assert await log.count_events() == STREAMED
        for event in written[:6]:
            assert await log.get_event(event.id) == event
    conn = await asyncpg.connect(_dsn(partitioned_url))
    try:
        old_rows = await conn.fetch(
            "SELECT tableoid::regclass::text AS part, count(*) AS n FROM event_log "
            "WHERE timestamp < now() - interval '300 days' GROUP BY 1"
        )
        total = await conn.fetchval("SELECT count(*) FROM event_log")
    finally:
        await conn.close()
    assert total == STREAMED
    # The old rows fell outside every day partition: all in the DEFAULT one.
    assert [(r["part"], r["n"]) for r in old_rows] == [("event_log_default", STREAMED // 2)]


# -- the COPY text format ------------------------------------------------------------------------

NASTY_TEXT = [
    "\t",
    "\n",
    "\r",
    "\\",
    "\\N",
    "\\.",
    "a\tb\nc\rd\\e",
    "\\\\N",
    " ",
    "é✓😀",
    "x" * 255,
]

texts = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    ),
)
# Floats within 1e15: PostgreSQL's jsonb gives larger ones back as integers of
# equal value (RELIABILITY.md), on every write path alike.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    texts,
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
timestamps = st.datetimes(
    min_value=datetime(1, 1, 3),
    max_value=datetime(9999, 12, 29),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))]
    ),
)
events = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["tool.called", "custom.thing_1"]), "source": texts},
    optional={
        "task_id": st.one_of(st.none(), texts),
        "agent_id": st.one_of(st.none(), texts),
        "data": st.one_of(st.none(), st.dictionaries(texts, json_values, max_size=4)),
        "timestamp": timestamps,
    },
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(odd=st.lists(events, min_size=1, max_size=8), at=st.integers(0, STREAMED))
async def test_any_values_read_back_exactly_after_a_streamed_batch(
    postgres_driver_url: str, odd: list[dict[str, Any]], at: int
) -> None:
    batch = make_batch(STREAMED)
    batch[at:at] = odd
    async with EventLogger.open(postgres_driver_url) as log:
        written = await log.log_events(batch)
        for event in written[at : at + len(odd)]:
            assert await log.get_event(event.id) == event
        await _admin(postgres_driver_url, "DELETE FROM event_log")


def test_copy_text_escapes_only_when_a_value_needs_it() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    plain: Row = ("id-1", "tool.called", "src", None, "agent", '{"a":1}', when)
    assert copy_text([plain]) == (
        b'id-1\ttool.called\tsrc\t\\N\tagent\t{"a":1}\t2026-01-02T03:04:05.000006+00\n'
    )
    nasty: Row = ("id-2", "tool.called", "a\tb", "\\N", "x\ny", '{"a":"q\\"r"}', when)
    assert copy_text([plain, nasty]).split(b"\n")[1] == (
        b'id-2\ttool.called\ta\\tb\t\\\\N\tx\\ny\t{"a":"q\\\\"r"}\t2026-01-02T03:04:05.000006+00'
    )
