"""``event-log serve`` as a process on a free loopback port, for tests that talk to it
over real sockets and read what it logs (stdout and stderr together)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from http_wire import split_response

__all__ = ["HOST", "LEAKS", "SCRIPT", "Server", "cli", "get", "leaks", "serving"]

SCRIPT = Path(sys.executable).with_name("event-log")
HOST = "127.0.0.1"
# What a clean run never logs: a traceback, an exception nobody awaited, uvicorn's
# complaint about a response an app let go of.
LEAKS = ("Traceback", "Task exception was never retrieved", "ASGI callable")
# Runs a command with RLIMIT_NOFILE's soft and hard limits at argv[1] (so that the
# server cannot raise it): python -c _LIMITED LIMIT COMMAND... (an exec rather than a
# hook run between fork and exec, which is unsafe in a process with threads).
_LIMITED = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    """This environment without a token or URL of the developer's."""
    env = {k: v for k, v in os.environ.items() if k not in ("EVENT_LOG_TOKEN", "EVENT_LOG_URL")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def cli(*args: str) -> None:
    """``event-log ARGS``, which must succeed."""
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr


def get(port: int, target: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """``GET target`` on a connection of its own, read to the server's close."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    status, _, body = split_response(bytes(data))
    return status, body


def leaks(log: str, also: tuple[str, ...] = ()) -> list[str]:
    """What a clean run never logs (``LEAKS`` and ``also``) found in ``log``: how often,
    and the first one."""
    found = []
    for leak in (*LEAKS, *also):
        if leak in log:
            at = log.index(leak)
            found.append(
                f"serve logged {leak!r} {log.count(leak)} time(s) ({len(log.splitlines())} "
                f"lines in all); the first:\n{log[max(0, at - 300) : at + 1200]}"
            )
    return found


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self, *, check: bool = True) -> None:
        """SIGINT (Ctrl-C), and wait for the process to end; kill it if it does not
        within 30 s (an AssertionError with ``check``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            if check:
                raise AssertionError("serve did not exit within 30 s of SIGINT") from None

    def stopped_cleanly(self) -> str:
        """Stop the server; its whole log, once checked for tracebacks and the like."""
        self.stop()
        log = self.log()
        found = leaks(log)
        assert not found, "\n".join(found)
        return log


@contextmanager
def serving(url: str, tmp_path: Path, *options: str, nofile: int | None = None) -> Iterator[Server]:
    """``event-log --url URL serve OPTIONS`` on a free port, once it answers ``/events``;
    with ``nofile``, its file descriptor limit (soft and hard). Stopped on the way out."""
    port = _free_port()
    command = [str(SCRIPT), "--url", url, "serve", "--port", str(port), *options]
    if nofile is not None:
        command = [sys.executable, "-c", _LIMITED, str(nofile), *command]
    log_file = tmp_path / "serve.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env())
    server = Server(process, port, log_file)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, server.log()
            try:
                if get(port, "/events?limit=1", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"serve did not answer:\n{server.log()}"
            time.sleep(0.05)
        yield server
    finally:
        server.stop(check=False)
