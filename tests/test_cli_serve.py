"""`event-log serve` and the exclusion options of the filter commands.

The server tests run ``event-log serve`` as a process on a free port and talk to
it over a real socket, 127.0.0.1, even when it listens on every interface.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from event_log.cli import app
from event_log.cli._serve import WEB_EXTRA_MODULES

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    """This environment without a token or URL of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("EVENT_LOG_TOKEN", "EVENT_LOG_URL")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _seeded(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    for event_type in ("task.created", "bid.submitted"):
        logged = CliRunner().invoke(app, ["--url", url, "log", event_type, "-s", "c"])
        assert logged.exit_code == 0, logged.output
    return url


@contextmanager
def running(args: list[str], log_file: Path, env: dict[str, str]) -> Iterator[str]:
    """``event-log ARGS`` as a server process: its base URL once it answers (any status).

    Its stderr goes to ``log_file``, read once it has stopped (SIGINT, as Ctrl-C).
    """
    port = args[args.index("--port") + 1]
    with log_file.open("wb") as log:
        server = subprocess.Popen([str(SCRIPT), *args], stdout=log, stderr=log, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            assert server.poll() is None, log_file.read_text()
            try:
                httpx.get(f"{base}/events", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("the server did not answer")
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)


SCRIPT = Path(sys.executable).with_name("event-log")


def test_serve_runs_the_web_app(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    assert CliRunner().invoke(app, ["--url", url, "log", "task.created", "-s", "c"]).exit_code == 0
    port = _free_port()
    server = subprocess.Popen(
        [str(SCRIPT), "--url", url, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
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


# -- who may read: a token on any interface but loopback ----------------------------------


def _first_bytes(client: httpx.Client, url: str, **kwargs: object) -> tuple[int, bytes]:
    """A stream's status and its first bytes; the connection is closed after them."""
    with client.stream("GET", url, **kwargs) as response:  # type: ignore[arg-type]
        if response.status_code != 200:
            return response.status_code, response.read()
        return 200, next(response.iter_bytes())


def test_serve_with_a_token_over_a_real_socket(tmp_path: Path) -> None:
    url = _seeded(tmp_path)
    token = f"tok-{secrets.token_urlsafe(12)}"
    port = str(_free_port())
    args = ["--url", url, "serve", "--host", "0.0.0.0", "--port", port, "--token", token]
    log_file = tmp_path / "server.log"
    with running(args, log_file, _env()) as base, httpx.Client(base_url=base, timeout=5) as http:
        # No credential: nothing is read.
        for path in ("/events", "/summary", "/"):
            refused = http.get(path)
            assert refused.status_code == 401, (path, refused.text)
        assert http.get("/events").json()["detail"]
        assert http.get("/events").headers["www-authenticate"].startswith("Bearer")
        assert 'action="/login"' in http.get("/").text
        status, body = _first_bytes(http, "/stream")
        assert status == 401, body

        # The bearer token: the API and the stream.
        bearer = {"Authorization": f"Bearer {token}"}
        events = http.get("/events", headers=bearer)
        assert events.status_code == 200, events.text
        assert [e["event_type"] for e in events.json()["events"]] == [
            "bid.submitted",
            "task.created",
        ]
        status, body = _first_bytes(http, "/stream", headers=bearer)
        assert (status, body[:6]) == (200, b"retry:"), body

        # The login form's cookie: the page, and what its script calls.
        login = http.post("/login", data={"token": token})
        assert login.status_code == 303
        assert token not in login.headers["set-cookie"]
        assert http.get("/").status_code == 200
        assert http.get("/events").status_code == 200
        status, body = _first_bytes(http, "/stream")
        assert (status, body[:6]) == (200, b"retry:"), body
    logged = log_file.read_text()
    assert "GET /events" in logged  # uvicorn's access log is on
    assert token not in logged


def test_serve_refuses_a_public_interface_without_a_token(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    args = ["--url", url, "serve", "--host", "0.0.0.0", "--port", str(_free_port())]
    for env in (_env(), _env(EVENT_LOG_TOKEN="")):  # an empty variable counts as unset
        done = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30
        )
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("Error: serving on 0.0.0.0 needs a token"), lines[0]
        for hint in ("--token", "EVENT_LOG_TOKEN", "--insecure-no-auth"):
            assert hint in lines[0]


def test_serve_insecure_no_auth_starts_with_a_warning(tmp_path: Path) -> None:
    url = _seeded(tmp_path)
    port = str(_free_port())
    args = ["--url", url, "serve", "--host", "0.0.0.0", "--port", port, "--insecure-no-auth"]
    log_file = tmp_path / "server.log"
    with running(args, log_file, _env()) as base:
        assert httpx.get(f"{base}/events", timeout=5).status_code == 200
        assert httpx.get(f"{base}/login", timeout=5).status_code == 404
    warning = log_file.read_text().splitlines()[0]
    assert warning == (
        f"Warning: serving 0.0.0.0:{port} without a token: anyone who can reach the port "
        "can read the audit trail"
    )


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What the command passes to ``event_log.web.serve``, which is not run."""
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(
        "event_log.web.serve", lambda url, **kwargs: calls.append({"url": url, **kwargs})
    )
    monkeypatch.delenv("EVENT_LOG_TOKEN", raising=False)
    return calls


def test_serve_passes_the_token_from_the_option_or_the_environment(
    served: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    base = ["--url", _seeded(tmp_path), "serve"]
    assert runner.invoke(app, [*base, "--token", "opt-token"]).exit_code == 0  # loopback too
    monkeypatch.setenv("EVENT_LOG_TOKEN", "env-token")
    assert runner.invoke(app, [*base, "--host", "::"]).exit_code == 0
    assert runner.invoke(app, [*base, "--token", "opt-wins"]).exit_code == 0
    monkeypatch.delenv("EVENT_LOG_TOKEN")
    assert runner.invoke(app, [*base, "--host", "localhost"]).exit_code == 0
    assert [(call["host"], call["token"]) for call in served] == [
        ("127.0.0.1", "opt-token"),
        ("::", "env-token"),
        ("127.0.0.1", "opt-wins"),
        ("localhost", None),
    ]
    assert all(call["read_only"] is True for call in served)  # serving never writes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", ""], "the token must not be empty"),
        (["--token", "two words"], "visible ASCII"),
        (["--token", "x", "--insecure-no-auth"], "contradict"),
        (["--host", "192.0.2.1"], "serving on 192.0.2.1 needs a token"),
    ],
)
def test_serve_usage_errors_are_one_line(
    served: list[dict[str, object]], args: list[str], message: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["--url", _seeded(tmp_path), "serve", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not served


# -- without the web extra ----------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(WEB_EXTRA_MODULES))
def test_serve_without_the_web_extra_says_so_once(tmp_path: Path, module: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from event_log.cli import main\n"
        f"main(['--url', 'sqlite+aiosqlite:///{tmp_path / 'x.db'}', 'serve'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: serve needs the web extra ({module} is not installed): "
        "pip install 'event-log[web]'\n"
    )


def test_the_web_package_without_fastapi_says_its_fix_once() -> None:
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"
        "try:\n"
        "    import event_log.web\n"
        "except ImportError as exc:\n"
        "    print(exc.name)\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "fastapi\n"
        "event_log.web needs the web extra (fastapi is not installed): "
        "pip install 'event-log[web]'\n"
    )
