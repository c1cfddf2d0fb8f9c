"""Follower cursors: their text form, and every way one can be refused."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from event_log import EventLogger, InvalidCursorError
from event_log._commit_order import (
    SeqPosition,
    SequenceOrder,
    StoredPosition,
    decode_cursor,
    encode_cursor,
)
from event_log.backends.postgresql._snapshots import Snapshot, SnapshotOrder, SnapshotPosition
from follow_helpers import started, take

SEQ = SequenceOrder()
SNAP = SnapshotOrder()


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    xmin = draw(st.integers(1, 2**62))
    xmax = draw(st.integers(xmin, xmin + 1000))
    xip = draw(st.lists(st.integers(xmin, max(xmin, xmax - 1)), max_size=5, unique=True))
    return Snapshot(xmin, xmax, tuple(sorted(x for x in xip if x < xmax)))


@st.composite
def snapshot_positions(draw: st.DrawFn) -> SnapshotPosition:
    after = draw(snapshots())
    if draw(st.booleans()):
        return SnapshotPosition(after)
    key = (draw(st.integers(0, 2**62)), draw(st.text(max_size=40)))
    return SnapshotPosition(after, draw(snapshots()), key)


@given(snapshots())
def test_a_snapshot_reads_back_from_its_text(snapshot: Snapshot) -> None:
    assert Snapshot.parse(str(snapshot)) == snapshot


@given(snapshot_positions(), st.booleans())
def test_a_snapshot_position_reads_back_from_its_cursor(
    position: SnapshotPosition, stored: bool
) -> None:
    from datetime import UTC, datetime

    if stored:
        listed = (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "an-id")
        assert decode_cursor(SNAP, encode_cursor(SNAP, StoredPosition(listed, position))) == (
            StoredPosition(listed, position)
        )
    else:
        assert decode_cursor(SNAP, encode_cursor(SNAP, position)) == position


@given(st.integers(0, 2**62))
def test_a_sequence_position_reads_back_from_its_cursor(seq: int) -> None:
    assert decode_cursor(SEQ, encode_cursor(SEQ, SeqPosition(seq))) == SeqPosition(seq)


@pytest.mark.parametrize("text", ["", "1:1", "a:b:", "5:3:", "3:9:2", "3:9:9", "0:0:"])
def test_text_that_is_no_snapshot_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Snapshot.parse(text)


def _forged(kind: object, value: object) -> str:
    """A cursor with a valid checksum around any body (what only a bug could make)."""
    from event_log._commit_order import _checksum

    body = json.dumps([kind, value]).encode()
    return "f." + base64.urlsafe_b64encode(body).rstrip(b"=").decode() + "." + _checksum(body)


def test_a_cursor_of_another_kind_of_database_is_refused() -> None:
    cursor = encode_cursor(SNAP, SnapshotPosition(Snapshot(5, 9, (6,))))
    with pytest.raises(InvalidCursorError, match="another kind of database"):
        decode_cursor(SEQ, cursor)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("s", -1),
        ("s", "7"),
        ("s", True),
        ("s+", [1, 2]),
        ("x", ["5:3:"]),
        ("x", [1, 2, 3, 4]),
        (7, 1),
    ],
)
def test_a_malformed_cursor_body_is_refused(kind: object, value: object) -> None:
    order = SNAP if str(kind).startswith("x") else SEQ
    with pytest.raises(InvalidCursorError, match="malformed"):
        decode_cursor(order, _forged(kind, value))


def test_an_altered_cursor_is_not_taken_as_one() -> None:
    cursor = encode_cursor(SEQ, SeqPosition(41))
    assert decode_cursor(SEQ, cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")) is None
    assert decode_cursor(SEQ, "f.not-base64!.xx") is None
    assert decode_cursor(SEQ, "some-event-id") is None


async def test_a_follower_resumes_from_its_cursor_in_another_logger(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/events.db"
    async with EventLogger.open(url) as log:
        follower = log.follow(source="a")
        assert follower.cursor is None  # not started
        reader = asyncio.ensure_future(take(follower, 3))
        await started(follower)
        written = [await log.log_event("task.created", "a", data={"i": i}) for i in range(5)]
        await log.log_event("task.created", "b")
        assert [e.id for e in await reader] == [e.id for e in written[:3]]
        cursor = follower.cursor
        assert cursor is not None
        await follower.aclose()
    async with EventLogger.open(url) as log:
        resumed = log.follow(source="a", cursor=cursor)
        reader = asyncio.ensure_future(take(resumed, 3))
        await started(resumed)
        later = await log.log_event("task.created", "a")
        assert [e.id for e in await reader] == [written[3].id, written[4].id, later.id]


async def test_an_altered_cursor_fails_as_an_unknown_event_id(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/events.db"
    async with EventLogger.open(url) as log:
        cursor = encode_cursor(SEQ, SeqPosition(3))
        follower = log.follow(cursor=cursor[:-1] + ("A" if cursor[-1] != "A" else "B"))
        with pytest.raises(InvalidCursorError, match="no event has the id"):
            await follower.__anext__()
        other = encode_cursor(SNAP, SnapshotPosition(Snapshot(5, 9, ())))
        with pytest.raises(InvalidCursorError, match="another kind of database"):
            log.follow(cursor=other)
