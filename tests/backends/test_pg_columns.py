"""PostgreSQL's group-commit statement: a batch's rows as one delimited text per column.

The server splits each text with ``string_to_array`` (``_pg_columns``). Rows the
split would change (a value holding the separator or the NULL marker, or one
row's empty string) go as arrays instead. Either way every value must read
back exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from event_log import EventLogger
from event_log._models import Row
from event_log.backends.postgresql._columns import NULL_MARK, SEPARATOR, joined_columns

WHEN = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def _row(
    source: str = "src",
    task_id: str | None = None,
    agent_id: str | None = "agent",
    data: str | None = '{"a":1}',
) -> Row:
    return ("id", "tool.called", source, task_id, agent_id, data, WHEN)


def test_plain_rows_are_joined_column_by_column() -> None:
    rows = [_row(), _row(task_id="t", agent_id=None, data=None)]
    stamp = "2026-01-02T03:04:05.000006+00"
    assert joined_columns(rows) == (
        f"id{SEPARATOR}id",
        f"tool.called{SEPARATOR}tool.called",
        f"src{SEPARATOR}src",
        f"{NULL_MARK}{SEPARATOR}t",
        f"agent{SEPARATOR}{NULL_MARK}",
        f'{{"a":1}}{SEPARATOR}{NULL_MARK}',
        f"{stamp}{SEPARATOR}{stamp}",
    )


@pytest.mark.parametrize(
    "rows",
    [
        [_row(source=f"a{SEPARATOR}b")],
        [_row(), _row(task_id=NULL_MARK)],
        [_row(agent_id=f"x{NULL_MARK}")],
        [_row(task_id="")],
    ],
    ids=["separator-in-a-value", "value-reads-as-null", "null-marker-inside", "one-empty-row"],
)
def test_rows_the_split_would_change_go_as_arrays(rows: list[Row]) -> None:
    assert joined_columns(rows) is None


def test_a_null_marker_where_no_null_is_read_is_kept_as_text() -> None:
    texts = joined_columns([_row(source=NULL_MARK), _row(task_id="")])
    assert texts is not None
    assert texts[2] == f"{NULL_MARK}{SEPARATOR}src"
    assert texts[3] == f"{NULL_MARK}{SEPARATOR}"  # NULL, then an empty string


values = st.one_of(
    st.sampled_from(["", SEPARATOR, NULL_MARK, f"a{SEPARATOR}b", f"{NULL_MARK}x", "é😀", "\\N"]),
    st.text(alphabet=st.sampled_from([SEPARATOR, NULL_MARK, "a", "\\", "\t", "é"]), max_size=5),
)
events = st.fixed_dictionaries(
    {"event_type": st.just("tool.called"), "source": values.filter(bool)},
    optional={
        "task_id": st.none() | values,
        "agent_id": st.none() | values,
        "data": st.none() | st.dictionaries(values, values, max_size=3),
    },
)


@pytest.mark.postgres
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(events, min_size=1, max_size=6))
async def test_any_values_read_back_exactly_from_a_group_statement(
    postgres_driver_url: str, batch: list[dict[str, Any]]
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        written = await log.log_events(batch)
        for event in written:
            assert await log.get_event(event.id) == event
    dsn = make_url(postgres_driver_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await conn.execute("DELETE FROM event_log")
    finally:
        await conn.close()
