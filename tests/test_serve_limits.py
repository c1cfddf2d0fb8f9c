"""`event-log serve` holds its ground: tested as a process, over real sockets.

Each test starts ``event-log serve`` on a free loopback port over a file SQLite
database (made with ``event-log db upgrade``) and talks to it with raw sockets,
so that it sees what a client sees: the bytes on the wire, when the server
closes, what it logs (stdout and stderr together). Times are measured only
where they are the point, against the bound the server promises; everything
else waits generously, so that a loaded machine slows the tests down without
failing them.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import statistics
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from http_wire import dechunk, split_response
from serve_process import HOST, Server, cli, get, leaks, serving

pytestmark = pytest.mark.sqlite

OPENING = b": connected\n\n"
SHUTDOWN = b": the server is shutting down\n\n"
CANNOT_ACCEPT = "cannot accept connections"


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An upgraded SQLite file holding one event (serve only reads it)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('serve-limits') / 'events.db'}"
    cli("--url", url, "db", "upgrade")
    cli("--url", url, "log", "task.created", "--source", "limits")
    return url


# -- HTTP on the wire ---------------------------------------------------------------------


def _timed_get(port: int) -> float:
    """Seconds a ``GET /events?limit=1`` on a new connection takes, connecting included."""
    began = time.monotonic()
    status, body = get(port, "/events?limit=1")
    took = time.monotonic() - began
    assert status == 200, body
    return took


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a ``content-length`` off a kept-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers, _ = split_response(head)
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


def _enough_files(needed: int) -> None:
    """This process may open ``needed`` sockets (the soft limit raised if need be)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# -- 1. SIGINT ends every stream at once ---------------------------------------------------

STREAMS = 300


async def _follow(port: int, opened: asyncio.Future[None]) -> bytes:
    """A ``/stream`` client: every byte until the server closes (``opened`` once its
    opening message came)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        data = b""
        while OPENING not in data:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError(f"the stream ended before its opening: {data!r}")
            data += chunk
        opened.set_result(None)
        return data + await reader.read()
    except Exception as exc:
        if not opened.done():
            opened.set_exception(exc)
        raise
    finally:
        await _close(writer)


async def test_sigint_ends_every_stream_with_a_last_comment_and_exits_within_2s(
    db_url: str, tmp_path: Path
) -> None:
    _enough_files(STREAMS + 200)
    with serving(db_url, tmp_path) as server:
        loop = asyncio.get_running_loop()
        opened = [loop.create_future() for _ in range(STREAMS)]
        clients = [asyncio.ensure_future(_follow(server.port, o)) for o in opened]
        try:
            async with asyncio.timeout(60):
                failed = [r for r in await asyncio.gather(*opened, return_exceptions=True) if r]
            assert not failed, failed[:3]
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            code = await asyncio.to_thread(server.process.wait, 30)
            took = time.monotonic() - signalled
            async with asyncio.timeout(30):
                received = await asyncio.gather(*clients)
        finally:
            for client in clients:
                client.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
        assert took <= 2.0, f"serve took {took:.2f} s to exit after SIGINT"
        assert code == 0, server.log()[-4000:]
        for data in received:
            status, headers, body = split_response(data)
            assert status == 200
            assert headers["content-type"].startswith("text/event-stream")
            payload, complete = dechunk(body)
            assert payload.startswith(b"retry: "), payload[:200]
            assert payload.endswith(SHUTDOWN), payload[-200:]
            assert complete, body[-200:]  # the response ended properly, then EOF
        server.stopped_cleanly()


# -- 2. slow request heads hold no one up --------------------------------------------------

SLOW = 1000
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
# Seconds from connecting within which the server must have closed a slow connection
# (its header timeout is 2 s).
CLOSED_WITHIN = 10.0


class _SlowClients:
    """``count`` connections that each send a request line and one header, then a header
    byte a second (every other one) or nothing; each connects again once the server
    closes it, until :meth:`stop`, so that about ``count`` are held all along."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.held = 0
        self.lifetimes: list[float] = []  # seconds from connecting to the server's close
        self._running = True
        self._connected = 0
        self._all_connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._client(n)) for n in range(self.count)]
        waiting = asyncio.ensure_future(self._all_connected.wait())
        try:
            async with asyncio.timeout(60):
                await asyncio.wait({waiting, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        for task in self._tasks:
            if task.done():
                task.result()  # a client that failed to connect: raised here
        assert self._all_connected.is_set()

    async def stop(self) -> None:
        """Connect no more; wait for every connection to be closed by the server."""
        self._running = False
        async with asyncio.timeout(CLOSED_WITHIN + 30):
            await asyncio.gather(*self._tasks)

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, n: int) -> None:
        while self._running:
            began = time.monotonic()  # before the server can have seen the connection
            reader, writer = await asyncio.open_connection(HOST, self.port)
            self.held += 1
            self._connected += 1
            if self._connected == self.count:
                self._all_connected.set()
            try:
                writer.write(SLOW_HEAD)
                try:
                    async with asyncio.timeout(CLOSED_WITHIN):
                        await self._until_closed(reader, writer, trickle=n % 2 == 0)
                except TimeoutError:
                    raise AssertionError(
                        f"a slow connection was still open after {CLOSED_WITHIN} s"
                    ) from None
                self.lifetimes.append(time.monotonic() - began)
            finally:
                self.held -= 1
                await _close(writer)

    @staticmethod
    async def _until_closed(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, trickle: bool
    ) -> None:
        while True:
            try:
                if not trickle:
                    chunk = await reader.read(4096)
                else:
                    try:
                        chunk = await asyncio.wait_for(reader.read(4096), 1.0)
                    except TimeoutError:
                        writer.write(b"x")  # one more byte of a header name
                        continue
            except ConnectionResetError:
                return  # closed while a byte was on its way: closed all the same
            if not chunk:
                return


async def test_slow_request_heads_delay_no_request_and_are_closed(
    db_url: str, tmp_path: Path
) -> None:
    _enough_files(SLOW + 300)
    with serving(db_url, tmp_path, "--header-timeout", "2") as server:
        baseline = statistics.median(
            [await asyncio.to_thread(_timed_get, server.port) for _ in range(5)]
        )
        slow = _SlowClients(server.port, SLOW)
        probes: list[tuple[float, int]] = []  # (seconds, slow connections held)
        try:
            await slow.start()
            for _ in range(10):
                held = slow.held
                probes.append((await asyncio.to_thread(_timed_get, server.port), held))
                await asyncio.sleep(0.2)
            await slow.stop()
        finally:
            await slow.cancel()
        log = server.stopped_cleanly()
    for took, _ in probes:
        assert took - baseline <= 1.0, (baseline, probes)
    # The probes ran while the slow connections were held (they reconnect when closed).
    assert statistics.median(held for _, held in probes) >= SLOW // 2, probes
    # Closed by the server, after its header timeout (2 s) and well within CLOSED_WITHIN.
    assert len(slow.lifetimes) >= SLOW
    assert min(slow.lifetimes) >= 1.9, sorted(slow.lifetimes)[:10]
    lines = log.splitlines()
    assert len(lines) < 200, log[-4000:]
    assert "out of system resource" not in log
    assert CANNOT_ACCEPT not in log


# -- 3. the connection cap ------------------------------------------------------------------


async def test_past_max_connections_a_client_is_turned_away_at_once(
    db_url: str, tmp_path: Path
) -> None:
    options = ("--max-connections", "20", "--header-timeout", "60", "--keep-alive", "60")
    with serving(db_url, tmp_path, *options) as server:
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            # 20 idle connections: half never sent a byte, half are kept alive after a
            # request (answered, so the server surely holds them).
            for n in range(20):
                reader, writer = await asyncio.open_connection(HOST, server.port)
                held.append((reader, writer))
                if n % 2:
                    writer.write(b"GET /events?limit=1 HTTP/1.1\r\nHost: test\r\n\r\n")
                    async with asyncio.timeout(30):
                        assert (await _response(reader))[0] == 200

            # The 21st is answered before it sends anything (the header timeout is 60 s).
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection(HOST, server.port)
                try:
                    data = await reader.read()
                finally:
                    await _close(writer)
            status, headers, body = split_response(data)
            assert status == 503, data
            assert data.startswith(b"HTTP/1.1 503 ")
            assert int(headers["retry-after"]) >= 1
            assert headers["content-type"] == "application/json"
            assert json.loads(body)["detail"]

            # So is a client that sends its request at once.
            async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as http:
                refused = await http.get("/events?limit=1", timeout=10)
            assert refused.status_code == 503, refused.text
            assert "retry-after" in refused.headers

            # The connections already held are served as before.
            reader, writer = held[1]
            writer.write(b"GET /events?limit=1 HTTP/1.1\r\nHost: test\r\n\r\n")
            async with asyncio.timeout(30):
                assert (await _response(reader))[0] == 200

            # Closing some makes room again (once the server has seen them close).
            for _, writer in held[:5]:
                await _close(writer)
            statuses: list[int] = []
            async with asyncio.timeout(30):
                while not statuses or statuses[-1] != 200:
                    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as http:
                        statuses.append((await http.get("/events?limit=1", timeout=10)).status_code)
                    if statuses[-1] != 200:
                        await asyncio.sleep(0.1)
            assert set(statuses) <= {200, 503}, statuses
        finally:
            for _, writer in held:
                await _close(writer)
        server.stopped_cleanly()


# -- 4. the stream cap --------------------------------------------------------------------


async def _open_stream(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A ``/stream`` connection, once its opening message came."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        data = b""
        async with asyncio.timeout(30):
            while OPENING not in data:
                chunk = await reader.read(65536)
                assert chunk, data
                data += chunk
                if b"\r\n\r\n" in data:
                    assert split_response(data)[0] == 200, data
    except BaseException:
        await _close(writer)
        raise
    return reader, writer


async def test_past_max_streams_a_stream_gets_503_and_the_api_still_answers(
    db_url: str, tmp_path: Path
) -> None:
    with serving(db_url, tmp_path, "--max-streams", "3") as server:
        streams = []
        try:
            for _ in range(3):
                streams.append(await _open_stream(server.port))
            base = f"http://{HOST}:{server.port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                async with http.stream("GET", "/stream") as refused:
                    body = await refused.aread() if refused.status_code != 200 else b""
                assert refused.status_code == 503, body
                assert refused.headers["retry-after"] == "5"
                assert refused.headers["content-type"] == "application/json"
                assert "streams" in json.loads(body)["detail"]

                events = await http.get("/events?limit=1")
                assert events.status_code == 200, events.text
                assert len(events.json()["events"]) == 1

            # A stream that ends makes room for another (once the server has seen it go).
            await _close(streams.pop()[1])
            async with asyncio.timeout(30):
                while True:
                    try:
                        streams.append(await _open_stream(server.port))
                        break
                    except AssertionError:
                        await asyncio.sleep(0.2)
        finally:
            for _, writer in streams:
                await _close(writer)
        server.stopped_cleanly()


# -- 5. accepts failing for want of file descriptors ----------------------------------------

NOFILE = 64  # the server starts with about a dozen open
FLOOD = 100
# Seconds the server is kept out of file descriptors (a burst of clients lasts a while).
EXHAUSTED = 6.0


async def _flood(port: int) -> list[asyncio.StreamWriter]:
    """``FLOOD`` idle connections (those the server cannot accept wait in its backlog)."""
    writers = []
    for _ in range(FLOOD):
        writers.append((await asyncio.open_connection(HOST, port))[1])
    return writers


async def _logged(server: Server, text: str) -> None:
    """Wait (30 s at most) for the server to log ``text``."""
    for _ in range(300):
        if text in server.log():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"serve did not log {text!r}:\n{server.log()[-3000:]}")


CAPPED = f"serving at most {NOFILE // 2} connections, not 2000: the open-file limit is {NOFILE}"


async def test_a_low_file_limit_caps_connections_so_accepts_never_fail(
    db_url: str, tmp_path: Path
) -> None:
    """Out of file descriptors, asyncio retries every pending accept, over and over, in
    a storm of tracebacks; so serve caps connections below the open-file limit (once,
    said at start) and the flood past the cap gets 503s instead."""
    with serving(db_url, tmp_path, nofile=NOFILE) as server:
        began = time.monotonic()
        flood = await _flood(server.port)
        try:
            await asyncio.sleep(EXHAUSTED)
            try:
                status, _ = await asyncio.to_thread(get, server.port, "/events?limit=1")
            except ConnectionResetError:
                status = 503  # refused with a 503 while the request was still arriving
            assert status in (200, 503)  # capped: a 503 with Retry-After at worst
        finally:
            for writer in flood:
                await _close(writer)
        status, body = await asyncio.to_thread(get, server.port, "/events?limit=1")
        assert status == 200, body
        elapsed = time.monotonic() - began
        server.stop()
        log = server.log()
    assert log.count(CAPPED) == 1, log[-4000:]
    assert log.count(CANNOT_ACCEPT) <= 1 + elapsed // 10, log[-4000:]
    found = leaks(log, also=("Exception in callback",))
    assert not found, "\n".join(found)


async def test_a_server_at_its_file_limit_stops_cleanly(db_url: str, tmp_path: Path) -> None:
    with serving(db_url, tmp_path, nofile=NOFILE) as server:
        flood = await _flood(server.port)
        try:
            await asyncio.sleep(EXHAUSTED)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            code = await asyncio.to_thread(server.process.wait, 60)
            took = time.monotonic() - signalled
        finally:
            for writer in flood:
                await _close(writer)
        log = server.log()
    problems = leaks(log, also=("Exception in callback",))
    # Idle connections are closed at once; only requests in flight (none) are waited for.
    if took > 5.0:
        problems.append(f"serve took {took:.2f} s to exit after SIGINT")
    if code != 0:
        problems.append(f"serve exited with {code}")
    assert not problems, "\n".join(problems)


# -- 6. keep-alive ------------------------------------------------------------------------


async def test_an_idle_kept_alive_connection_is_closed_after_keep_alive(
    db_url: str, tmp_path: Path
) -> None:
    with serving(db_url, tmp_path, "--keep-alive", "1") as server:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            async with asyncio.timeout(30):
                for _ in range(2):  # the connection is kept for a second request
                    # Before the request, so before the server's keep-alive timer starts.
                    asked = time.monotonic()
                    writer.write(b"GET /events?limit=1 HTTP/1.1\r\nHost: test\r\n\r\n")
                    status, headers, body = await _response(reader)
                    assert status == 200, body
                    assert headers.get("connection", "").lower() != "close"
            async with asyncio.timeout(30):
                rest = await reader.read()
            idle = time.monotonic() - asked
        finally:
            await _close(writer)
        server.stopped_cleanly()
    assert rest == b""
    assert idle <= 3.0, f"an idle connection was closed after {idle:.2f} s"
    assert idle >= 0.9, f"closed after {idle:.2f} s: not kept alive for its second"


def test_the_command_line_defaults_are_the_librarys() -> None:
    """`event-log serve`'s limits default to what serve() and the router default to (the
    command line cannot import the web extra to read them when it is not installed)."""
    from event_log.cli._serve import serve as serve_command
    from event_log.web import _fanout, _server

    defaults = {p.name: p.default for p in serve_command.params}
    assert defaults["max_connections"] == _server.DEFAULT_MAX_CONNECTIONS
    assert defaults["header_timeout"] == _server.DEFAULT_HEADER_TIMEOUT
    assert defaults["keep_alive"] == _server.DEFAULT_KEEP_ALIVE
    assert defaults["max_streams"] == _fanout.DEFAULT_MAX_STREAMS
    assert defaults["max_lag"] == _fanout.DEFAULT_MAX_LAG
