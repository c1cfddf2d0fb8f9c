"""The live stream's shared tail: one follower for every client, bounded lag, resumes.

The hub is driven directly (``StreamHub``/``Subscription``, as the SSE response
drives them) where the point is what it queues; over a real socket where the
point is what a client receives.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from tests.test_web import open_stream
from tests.web_helpers import make_app

from event_log import EventFilter, EventLogger
from event_log.web import _fanout
from event_log.web._fanout import StreamHub
from event_log.web._subscription import LAGGED_EVENT, Subscription

_ID = re.compile(rb"^id: (.*)$", re.M)


async def _frames(sub: Subscription, count: int, within: float = 5) -> list[dict[str, Any]]:
    """The next ``count`` events ``sub`` hands out (heartbeats skipped), parsed, each with
    its stream position added as ``position``."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            chunk = await sub.next()
            assert chunk is not None, sub.ending
            sub.sent()
            for message in chunk.split(b"\n\n"):
                if b"\ndata: " in message:
                    head, _, data = message.partition(b"\ndata: ")
                    event = json.loads(data)
                    got.append(event | {"position": head.removeprefix(b"id: ").decode()})
    return got


async def _until(condition: Any, within: float = 5) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - a condition of another object's state
            await asyncio.sleep(0.01)


@pytest.fixture
async def hub(log: EventLogger) -> AsyncIterator[StreamHub]:
    hub = StreamHub(log, heartbeat=30, max_lag=5)
    yield hub
    hub.shutdown()


async def test_every_client_shares_one_read_and_one_encoding(
    log: EventLogger, hub: StreamHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    real = _fanout.encode_frame

    def counting(event: Any, position: str) -> bytes:
        encoded.append(event.id)
        return real(event, position)

    monkeypatch.setattr(_fanout, "encode_frame", counting)
    subs = [await hub.subscribe(EventFilter(), None) for _ in range(10)]
    tasks = [await hub.subscribe(EventFilter(event_type="task.*"), None) for _ in range(3)]
    logged = [await log.log_event("task.created", "c", data={"i": i}) for i in range(3)]
    logged.append(await log.log_event("tool.called", "c"))
    for sub in subs:
        assert [f["id"] for f in await _frames(sub, 4)] != []
    for sub in tasks:
        got = await _frames(sub, 3)
        assert [f["data"] for f in got] == [{"i": i} for i in range(3)]
    assert encoded == [e.id for e in logged]  # once each, for 13 clients
    assert hub.streams == 13


async def test_a_client_that_falls_behind_is_cut_off_naming_its_position(
    log: EventLogger, hub: StreamHub
) -> None:
    fast = await hub.subscribe(EventFilter(), None)
    slow = await hub.subscribe(EventFilter(), None)
    reading = asyncio.create_task(_frames(fast, 8))  # the fast client keeps up
    logged = [await log.log_event("task.created", "c", data={"i": i}) for i in range(2)]
    early = await _frames(slow, 2)  # the slow one reads two events, then stops reading
    logged += [await log.log_event("task.created", "c", data={"i": i}) for i in range(2, 8)]
    got = await reading
    assert [f["id"] for f in got[:2]] == [f["id"] for f in early]
    await _until(lambda: slow.ending is not None)
    assert await slow.next() is None
    assert slow.ending is not None
    kind, data = slow.ending.decode().strip().split("\n")
    assert kind == f"event: {LAGGED_EVENT}"
    body = json.loads(data.removeprefix("data: "))
    assert body["cursor"] == early[-1]["position"]  # after the last event it was sent
    assert "fell more than 5 events behind" in body["detail"]
    # The fast client was not held back, and the cut-off one resumes exactly there:
    # six events on, more than it may lag, so they are read from the database...
    resumed = await hub.subscribe(EventFilter(), body["cursor"])
    assert not resumed.live
    assert [f["id"] for f in await _frames(resumed, 6)] == [f["id"] for f in got[2:]]
    # ...while from a position fewer events back, from the hub's memory.
    nearer = await hub.subscribe(EventFilter(), got[3]["position"])
    assert nearer.live
    assert [f["id"] for f in await _frames(nearer, 4)] == [f["id"] for f in got[4:]]
    # Positions are ids of the stream; the events are the ones logged, in order.
    assert [f["id"] for f in got] == [e.id for e in logged]


async def test_a_resume_from_a_position_the_hub_does_not_hold_reads_the_database(
    log: EventLogger, hub: StreamHub
) -> None:
    # A follower's position from before the hub started: the hub never held it.
    async with log.follow() as follower:
        pending = asyncio.ensure_future(anext(follower))
        await follower.began.wait()
        first = await log.log_event("task.created", "c", data={"i": 0})
        assert (await pending).id == first.id
        old_position = follower.cursor
    assert old_position is not None
    rest = [await log.log_event("task.created", "c", data={"i": i}) for i in range(1, 4)]
    live = await hub.subscribe(EventFilter(), None)  # starts the hub after those
    resumed = await hub.subscribe(EventFilter(), old_position)
    assert not resumed.live
    later = [await log.log_event("task.started", "c", data={"i": i}) for i in range(2)]
    got = await _frames(resumed, 5)
    assert [f["id"] for f in got][:3] == [e.id for e in rest]
    assert [f["data"]["i"] for f in got] == [1, 2, 3, 0, 1]
    assert [f["id"] for f in got][3:] == [e.id for e in later]
    assert len({f["id"] for f in got}) == 5
    assert [f["id"] for f in await _frames(live, 2)] == [e.id for e in later]
    if log._db.backend.commit_order.kind == "s":
        # Sequence numbers: once its own reads reach what the hub holds, it joins the hub.
        await _until(lambda: resumed.live)
        again = await log.log_event("task.completed", "c")
        assert [f["id"] for f in await _frames(resumed, 1)] == [again.id]
    await hub.release(resumed)


async def test_the_hub_refuses_streams_past_its_cap(log: EventLogger) -> None:
    hub = StreamHub(log, heartbeat=30, max_streams=2)
    first = await hub.subscribe(EventFilter(), None)
    await hub.subscribe(EventFilter(), None)
    with pytest.raises(_fanout.StreamLimitError, match="limit of 2 streams"):
        await hub.subscribe(EventFilter(), None)
    await hub.release(first)
    await hub.subscribe(EventFilter(), None)
    hub.shutdown()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_the_hub_refuses_bad_limits(log: EventLogger, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_lag must be a positive integer"):
        StreamHub(log, heartbeat=1, max_lag=bad)


async def test_shutdown_ends_every_stream_with_a_comment(log: EventLogger, hub: StreamHub) -> None:
    subs = [await hub.subscribe(EventFilter(), None) for _ in range(3)]
    hub.shutdown()
    for sub in subs:
        assert await sub.next() is None
        assert sub.ending == b": the server is shutting down\n\n"
    with pytest.raises(Exception, match="shutting down"):
        await hub.subscribe(EventFilter(), None)


# -- over a real socket ------------------------------------------------------------------


@pytest.fixture
async def served(log: EventLogger) -> AsyncIterator[tuple[str, int]]:
    """The router in uvicorn on a loopback port."""
    async with _serving(log, max_lag=2000) as address:
        yield address


@pytest.fixture
async def served_lagging(log: EventLogger) -> AsyncIterator[tuple[str, int]]:
    """The router in uvicorn on a loopback port, letting clients lag 50 events."""
    async with _serving(log, max_lag=50) as address:
        yield address


@asynccontextmanager
async def _serving(log: EventLogger, *, max_lag: int) -> AsyncIterator[tuple[str, int]]:
    await log.log_event("system.info", "test-setup")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Small send buffers (accepted connections inherit them): a client that stops
    # reading holds the server's writes back after a few events, not megabytes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(log, max_lag=max_lag),
        lifespan="off",
        log_level="warning",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await _until(lambda: server.started or task.done(), within=10)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        async with asyncio.timeout(20):
            await task
        sock.close()


@pytest.mark.sqlite
@pytest.mark.parametrize("head_url", ["sqlite-file"], indirect=True)
async def test_a_client_that_stops_reading_gets_the_lagged_message_and_resumes(
    log: EventLogger, served_lagging: tuple[str, int]
) -> None:
    base, port = served_lagging
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(
        b"GET /stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    head = await reader.readuntil(b": connected\n\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    # Not reading now: big events fill the socket buffers, then the client's 50.
    blob = "x" * 4000
    logged = [
        await log.log_event("tool.called", "c", data={"i": i, "blob": blob}) for i in range(400)
    ]
    await asyncio.sleep(1)
    # Reading again, in time for the last message.
    rest = b""
    async with asyncio.timeout(20):
        while chunk := await reader.read(2**20):
            rest += chunk
    writer.close()
    text = rest.decode()
    assert f"event: {LAGGED_EVENT}" in text
    lagged = json.loads(text.split(f"event: {LAGGED_EVENT}\ndata: ")[1].split("\n")[0])
    got = [json.loads(line[6:]).get("id") for line in text.splitlines() if line.startswith("data:")]
    got = [i for i in got if i in {e.id for e in logged}]
    ids = [m.decode() for m in _ID.findall(rest)]
    assert lagged["cursor"] == ids[-1]  # the position after the last event it received
    assert 0 < len(got) < len(logged)
    # Resuming from the named position gives exactly the rest, once each.
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response, sse = await open_stream(
            http, "/stream", headers={"Last-Event-ID": lagged["cursor"]}
        )
        more = [(await sse.event())["event_id"] for _ in range(len(logged) - len(got))]
        await response.aclose()
    assert got + more == [e.id for e in logged]


async def test_reconnects_under_concurrent_writers_skip_nothing(
    log: EventLogger, head_url: str, served: tuple[str, int]
) -> None:
    """Two writers (this logger and another on the same database) commit while a client
    reads a few events, drops, and reconnects with Last-Event-ID, ten times over."""
    base, _ = served
    if head_url == "sqlite+aiosqlite://":
        other = None  # in-memory: one logger is the whole database
    else:
        other = await EventLogger.open(head_url)
    written: list[str] = []
    stop = asyncio.Event()

    async def write(logger: EventLogger, name: str) -> None:
        i = 0
        while not stop.is_set():
            event = await logger.log_event("tool.called", name, data={"i": i})
            written.append(event.id)
            i += 1
            await asyncio.sleep(0.002)

    got: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response, sse = await open_stream(http, "/stream")
        position = None
        writers = [asyncio.create_task(write(log, "w1"))]
        if other is not None:
            writers.append(asyncio.create_task(write(other, "w2")))
        try:
            for _ in range(10):
                for _ in range(5):
                    message = await sse.event(within=10)
                    assert "event_id" in message, message
                    got.append(message["event_id"])
                    position = message["id"]
                await response.aclose()
                await asyncio.sleep(0.05)  # events commit while no one listens
                response, sse = await open_stream(
                    http, "/stream", headers={"Last-Event-ID": position}
                )
        finally:
            stop.set()
            await asyncio.gather(*writers)
            if other is not None:
                await other.close()
        # Everything written up to now arrives, once each.
        while len(got) < len(written):
            message = await sse.event(within=10)
            assert "event_id" in message, message
            got.append(message["event_id"])
        await response.aclose()
    assert len(got) == len(set(got))
    assert set(got) == set(written)


async def test_a_filtered_resume_from_memory_gets_only_its_events(
    log: EventLogger, hub: StreamHub
) -> None:
    tasks = EventFilter(event_type="task.*", data_where=[("n", ">=", 1)])
    sub = await hub.subscribe(tasks, None)
    await log.log_event("task.created", "c", data={"n": 1})
    (first,) = await _frames(sub, 1)
    missed = []
    for n, kind in enumerate(["tool.called", "task.started", "task.started", "agent.joined"]):
        event = await log.log_event(kind, "c", data={"n": n})
        if kind.startswith("task.") and n >= 1:
            missed.append(event.id)
    await hub.release(sub)
    resumed = await hub.subscribe(tasks, first["position"])
    assert resumed.live  # the hub held the position: replayed from memory, filtered there
    assert [f["id"] for f in await _frames(resumed, len(missed))] == missed
