"""`event-log serve` and the exclusion options of the filter commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from event_log.cli import app

pytestmark = pytest.mark.sqlite


def test_exclusion_options(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    runner = CliRunner()
    for event_type, source in [
        ("tool.called", "agent"),
        ("tool.completed", "noisy"),
        ("task.created", "coordinator"),
        ("system.error", "noisy"),
    ]:
        logged = runner.invoke(app, ["--url", url, "log", event_type, "--source", source])
        assert logged.exit_code == 0, logged.output

    def types(*args: str) -> list[str]:
        result = runner.invoke(app, ["--url", url, "query", "--format", "json", *args])
        assert result.exit_code == 0, result.output
        return sorted(json.loads(line)["event_type"] for line in result.output.splitlines())

    assert types("--exclude-type", "tool.*") == ["system.error", "task.created"]
    assert types("--exclude-source", "noisy") == ["task.created", "tool.called"]
    assert types("-T", "task.*,system.error", "--exclude-source", "agent") == ["tool.completed"]
    bad = runner.invoke(app, ["--url", url, "query", "--exclude-type", "NOT A TYPE"])
    assert bad.exit_code == 2


def test_serve_runs_the_web_app(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    assert CliRunner().invoke(app, ["--url", url, "log", "task.created", "-s", "c"]).exit_code == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(sys.executable).with_name("event-log")
    server = subprocess.Popen(
        [str(script), "--url", url, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=1) as reply:
                    body = json.load(reply)
                    break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "the server did not answer"
        assert [e["event_type"] for e in body["events"]] == ["task.created"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
