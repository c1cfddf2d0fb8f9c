"""The processes of ``bench.stream``: the server under test, its database, the children.

:class:`Processes` starts them and, when its block ends for any reason (an
error, Ctrl-C), stops every one it started: a child first by closing its
stdin, the server by SIGINT (uvicorn's clean shutdown), each killed when it
has not ended within a few seconds. Every process starts in a session of its
own, so a Ctrl-C in the terminal reaches only the benchmark, which then stops
them itself. Servers and children report their CPU time and memory through
``/proc`` (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ._stream_wire import WireError, read_response, request
from .common import ROOT

__all__ = [
    "SCRIPT",
    "BenchError",
    "Child",
    "Processes",
    "Server",
    "child_env",
    "cpu_seconds",
    "host_busy_pct",
    "host_ticks",
    "prepare_database",
    "rss_mb",
]

SCRIPT = Path(sys.executable).with_name("event-log")
"""The ``event-log`` command of this interpreter's environment."""

_START_TIMEOUT_S = 60.0  # for the server to answer, a child to say it is ready
_STOP_TIMEOUT_S = 10.0  # for a process to end once told to, before it is killed
_LINE_LIMIT = 64 * 1024 * 1024  # a child's report is one line: latencies, histograms
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(RuntimeError):
    """A measurement could not be made; the message says which and why."""


def child_env(src: Path | None = None) -> dict[str, str]:
    """This environment without the developer's event-log URL or token; with ``src``
    (a directory holding the ``event_log`` package) first on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("EVENT_LOG_URL", "EVENT_LOG_TOKEN")}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return {**env, "PYTHONUNBUFFERED": "1"}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def _proc_file(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except (FileNotFoundError, ProcessLookupError):
        raise BenchError(
            f"/proc/{pid}/{name} cannot be read: the process has ended, or this is not Linux"
        ) from None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = _proc_file(pid, "stat").rsplit(")", 1)[1].split()
    # After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (or another ``Vm*`` field) of process ``pid``, in MiB."""
    for line in _proc_file(pid, "status").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/status has no {field}")


def host_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole host so far, all cores (``/proc/stat``)."""
    fields = [int(v) for v in _proc_file_at(Path("/proc/stat")).split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def host_busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all the host's cores that was busy between two ``host_ticks()``."""
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total else float("nan")


def _proc_file_at(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise BenchError(f"{path} cannot be read: this is not Linux") from None


def prepare_database(url: str, workdir: Path, env: dict[str, str]) -> None:
    """Create the schema with ``event-log db upgrade`` and log one event to anchor streams.

    A stream opened on an empty log has no event to start after; with one, it
    starts as it would in production, after the newest event.
    """
    for args in (
        ["db", "upgrade"],
        ["log", "bench.warm_up", "--source", "stream-bench", "--format", "json"],
    ):
        done = subprocess.run(
            [str(SCRIPT), "--url", url, *args],
            capture_output=True,
            text=True,
            cwd=workdir,
            env=env,
            timeout=_START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(
                f"event-log {' '.join(args[:2])} failed (exit {done.returncode}): "
                f"{_last_line(done.stderr or done.stdout)}"
            )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``event-log --url URL serve --port PORT [OPTIONS]``: one process, uvicorn inside it."""

    def __init__(
        self, url: str, log_path: Path, env: dict[str, str], options: Sequence[str] = ()
    ) -> None:
        self.url = url
        self.log_path = log_path
        self._env = env
        self._options = tuple(options)
        self.port = _free_port()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def peak_rss_mb(self) -> float:
        return rss_mb(self.pid, "VmHWM")

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._proc = proc = await asyncio.create_subprocess_exec(
                str(SCRIPT),
                "--url",
                self.url,
                "serve",
                "--port",
                str(self.port),
                *self._options,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
                env=self._env,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if proc.returncode is not None:
                raise BenchError(
                    f"event-log serve exited with {proc.returncode} before answering: "
                    f"{_last_line(self.log_path.read_text(errors='replace'))}"
                )
            if await self._answers():
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"event-log serve did not answer on port {self.port} within "
                    f"{_START_TIMEOUT_S:.0f} s (its log: {self.log_path})"
                )
            await asyncio.sleep(0.1)

    async def _answers(self) -> bool:
        try:
            async with asyncio.timeout(5):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    writer.write(request("/events?limit=1", self.port))
                    response = await read_response(reader)
                finally:
                    writer.close()
        except (OSError, TimeoutError, WireError):
            return False
        if response.status != 200:
            raise BenchError(f"event-log serve answered GET /events with {response.status}")
        return True

    async def stop(self) -> None:
        """SIGINT (uvicorn shuts down cleanly), then SIGKILL when it has not ended."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            self.kill()
            await proc.wait()

    def kill(self) -> None:
        """SIGKILL when still running."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


class Child:
    """A ``python -m bench._stream_*`` process speaking JSON lines."""

    def __init__(self, what: str, proc: asyncio.subprocess.Process) -> None:
        self.what = what
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def line(self, wait_s: float) -> dict[str, Any]:
        """Its next JSON line within ``wait_s``; its failure (its stderr's last line) as a
        BenchError."""
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), wait_s)
        except TimeoutError:
            raise BenchError(f"the {self.what} did not answer within {wait_s:.0f} s") from None
        if not line:
            raise BenchError(f"the {self.what} failed: {await self._why()}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def _why(self) -> str:
        assert self._proc.stderr is not None
        try:
            stderr = await asyncio.wait_for(self._proc.stderr.read(), _STOP_TIMEOUT_S)
        except TimeoutError:
            stderr = b""
        return _last_line(stderr.decode(errors="replace"))

    def send(self, command: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")

    async def stop(self) -> None:
        """Close its stdin (it ends), killed when it has not ended within a few seconds."""
        proc = self._proc
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                self.kill()
                await proc.wait()

    def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()


class Processes:
    """Every process of one measurement; all are stopped when the ``async with`` ends."""

    def __init__(
        self, workdir: Path, env: dict[str, str], serve_options: Sequence[str] = ()
    ) -> None:
        self.workdir = workdir
        self._env = env
        self._serve_options = tuple(serve_options)
        self._servers: list[Server] = []
        self._children: list[Child] = []

    async def __aenter__(self) -> Processes:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.gather(*(child.stop() for child in self._children))
            await asyncio.gather(*(server.stop() for server in self._servers))
        finally:  # cancelled while stopping them (a second Ctrl-C): kill what is left
            self.kill()

    def kill(self) -> None:
        for child in self._children:
            child.kill()
        for server in self._servers:
            server.kill()

    async def server(self, name: str) -> Server:
        """A fresh database ``<name>.db`` and ``event-log serve`` on it, answering."""
        path = self.workdir / f"{name}.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(prepare_database, url, self.workdir, self._env)
        server = Server(url, self.workdir / f"{name}.server.log", self._env, self._serve_options)
        self._servers.append(server)
        await server.start()
        return server

    async def child(self, what: str, module: str, *args: object) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"bench.{module}",
            *(str(arg) for arg in args),
            cwd=ROOT,
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        child = Child(what, proc)
        self._children.append(child)
        return child

    async def ready(self, children: list[Child]) -> list[dict[str, Any]]:
        """Each child's first line, once every one has said it is ready."""
        return list(await asyncio.gather(*(c.line(_START_TIMEOUT_S) for c in children)))
