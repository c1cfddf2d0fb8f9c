"""``event-log`` as a real process: the console script, ``tail -f`` ended by a signal, and
output piped into ``head``."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from cli_helpers import interruptible
from event_log import Event, EventLogger

EXE = Path(sys.executable).with_name("event-log")


async def _with_log(url: str, action: Any) -> Any:
    async with EventLogger.open(url) as log:
        return await action(log)


def with_log(url: str, action: Any) -> Any:
    return asyncio.run(_with_log(url, action))


def seed(url: str, events: Any) -> list[Event]:
    items = list(events)
    return with_log(url, lambda log: log.log_events(items))  # type: ignore[no-any-return]


def event_log(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    if not EXE.is_file():
        pytest.fail(f"{EXE} is missing: reinstall with .venv/bin/pip install -e '.[test,cli]'")


def test_console_script_runs() -> None:
    result = event_log("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: event-log [OPTIONS] COMMAND")
    version = event_log("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("event-log, version ")
    module = subprocess.run(
        [sys.executable, "-m", "event_log.cli", "db", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert module.returncode == 0
    assert "upgrade" in module.stdout


def test_usage_error_exit_code_and_one_line(tmp_path: Path) -> None:
    result = event_log("--url", f"sqlite:///{tmp_path / 'x.db'}", "query", "--since", "soon")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--since" in result.stderr


class Lines:
    """A process's output lines, read by a thread so reads can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def next(self, timeout: float = 20) -> str:
        return self._queue.get(timeout=timeout)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_tail_follow_until_interrupted(migratable_url: str, stop: signal.Signals) -> None:
    url = migratable_url
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    shown = seed(
        url,
        [
            {"event_type": "task.created", "source": "c", "task_id": f"t-{i}", "timestamp": t0}
            for i in range(3)
        ],
    )
    command = [str(EXE), "--url", url, "tail", "-f", "-n", "2", "--type", "task.*", "-F", "json"]
    proc = subprocess.Popen(
        interruptible(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A process that does not end is sent SIGABRT below: with the fault
        # handler on, it prints every thread's stack to stderr first.
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        lines = Lines(proc.stdout)
        first = [json.loads(lines.next()) for _ in range(2)]
        assert [e["id"] for e in first] == sorted(e.id for e in shown)[1:]

        # Written by this process: the follower finds it by polling, then another one.
        async def write(log: EventLogger) -> None:
            await log.log_event("tool.called", "a")
            await log.log_event("task.completed", "a", task_id="t-9")

        with_log(url, write)
        live = json.loads(lines.next())
        assert live["event_type"] == "task.completed"
        assert live["task_id"] == "t-9"
        proc.send_signal(stop)
        try:
            returncode = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=20)
            pytest.fail(
                f"tail -f still ran 20 s after {stop.name}; its stacks:\n{proc.stderr.read()}"
            )
        assert returncode == 0
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr
        assert "Aborted" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_query_piped_into_head_gives_json_lines(migratable_url: str) -> None:
    url = migratable_url
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    seed(
        url,
        (
            {
                "event_type": "tool.called",
                "source": "agent",
                "data": {"payload": "x" * 200, "n": i},
                "timestamp": t0 + timedelta(milliseconds=i),
            }
            for i in range(1500)  # several hundred KB: more than a pipe holds
        ),
    )
    command = f"{shlex.quote(str(EXE))} --url {shlex.quote(url)} query --all | head -n 5"
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    events = [json.loads(line) for line in lines]
    assert [e["data"]["n"] for e in events] == [1499, 1498, 1497, 1496, 1495]
    assert result.stderr == ""

    as_json = event_log("--url", url, "query", "-n", "3", "--format", "json")
    assert [json.loads(line)["data"]["n"] for line in as_json.stdout.splitlines()] == [
        1499,
        1498,
        1497,
    ]
