"""An operator's bad day, as real ``event-log`` processes: every expected failure is at
most a few lines on stderr, never a traceback, with exit status 1 (a failure) or 2 (a
usage error); readers never create or change a database; a listing cut at its limit
says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cli_helpers import cli, ok
from event_log import EventLogger

EXE = Path(sys.executable).with_name("event-log")
UNREACHABLE = "postgresql+asyncpg://u@127.0.0.1:1/x"

# Every command that only reads, with the arguments it needs.
READERS: list[tuple[str, ...]] = [
    ("query",),
    ("summary",),
    ("stats",),
    ("tail",),
    ("task", "t-1"),
    ("agent", "a-1"),
    ("export", "-o", "-"),
    ("prune", "--dry-run", "--older-than", "30d"),
    ("db", "check"),
    ("db", "current"),
]
READER_IDS = [" ".join(args) for args in READERS]
# And serve, which checks the database the way a reader does before it starts (on a
# free port: it exits at once in these tests, which give it no event log to serve).
FAILING_READERS = [*READERS, ("serve", "--port", "1")]
FAILING_READER_IDS = [*READER_IDS, "serve"]


def run(
    *args: str, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, str(EXE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def expect_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """One short error on stderr: at most 3 lines, no traceback, the documented status."""
    err = result.stderr.strip()
    assert result.returncode == code, (result.returncode, result.stdout, err)
    assert "Traceback" not in result.stderr, err
    assert 1 <= len(err.splitlines()) <= 3, err
    assert err.startswith("Error: "), err
    for word in words:
        assert word in err, (word, err)
    return err


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def fill(url: str, count: int, **fields: str) -> None:
    async def go() -> None:
        async with EventLogger.open(url) as log:
            await log.log_events(
                [
                    {"event_type": "bid.submitted", "source": "s", "data": {"n": i}, **fields}
                    for i in range(count)
                ]
            )

    asyncio.run(go())


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("bad-day") / "events.db")
    fill(url, 150, agent_id="a-1")
    return url


@pytest.mark.parametrize("args", FAILING_READERS, ids=FAILING_READER_IDS)
def test_an_unreachable_server_is_one_line(args: tuple[str, ...]) -> None:
    err = expect_error(run("--url", UNREACHABLE, *args), 1, "127.0.0.1:1")
    assert len(err.splitlines()) == 1
    assert "server is running" in err


def test_a_writer_on_an_unreachable_server_is_one_line() -> None:
    expect_error(
        run("--url", UNREACHABLE, "log", "task.created", "-s", "c"), 1, "server is running"
    )


@pytest.mark.postgres
def test_refused_authentication_and_a_missing_database(postgres_url: str) -> None:
    stranger = make_url(postgres_url).set(username="nobody_at_all")
    url = stranger.render_as_string(hide_password=False)
    expect_error(run("--url", url, "query"), 1, "nobody_at_all", "user name and password")
    missing = make_url(postgres_url).set(database="no_such_database_here")
    url = missing.render_as_string(hide_password=False)
    expect_error(run("--url", url, "summary"), 1, "no_such_database_here", "create the database")


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("mysql://u@127.0.0.1/x", "asyncmy", "event-log[mariadb]"),
        ("postgresql://u@127.0.0.1/x", "asyncpg", "event-log[postgresql]"),
    ],
    ids=["mariadb", "postgresql"],
)
def test_a_missing_driver_names_its_extra(url: str, module: str, extra: str) -> None:
    # The driver made unimportable, as on a machine without it.
    code = (
        f"import sys; sys.modules[{module!r}] = None; sys.argv = ['event-log', '--url', {url!r}, "
        "'query']; from event_log.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    expect_error(result, 1, module, extra)


def test_a_listing_cut_at_its_limit_says_so(filled: str) -> None:
    default = run("--url", filled, "query", "-F", "json")
    assert default.returncode == 0, default.stderr
    assert len(default.stdout.splitlines()) == 100
    assert "--all" in default.stderr
    assert "--limit" in default.stderr
    everything = run("--url", filled, "query", "-F", "json", "--all")
    assert everything.returncode == 0, everything.stderr
    ids = [json.loads(line)["id"] for line in everything.stdout.splitlines()]
    assert len(ids) == len(set(ids)) == 150
    assert everything.stderr == ""
    exact = run("--url", filled, "query", "-F", "json", "--limit", "150")
    assert len(exact.stdout.splitlines()) == 150
    assert exact.stderr == ""
    # The agent listing takes the same -n/--limit and --all.
    agent = run("--url", filled, "agent", "a-1", "-F", "json", "-n", "5")
    assert len(agent.stdout.splitlines()) == 5
    assert "--all" in agent.stderr
    assert (
        len(run("--url", filled, "agent", "a-1", "-F", "json", "--all").stdout.splitlines()) == 150
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--where", "bid_sats>>100"), ("'>>' is not an operator",)),
        (("--where", "bid_sats==100"), ("'==' is not an operator",)),
        (("--since", "15m", "--until", "2h"), ("since", "until")),
    ],
    ids=["where->>", "where-==", "since-after-until"],
)
def test_filters_that_cannot_be_right_are_usage_errors(
    filled: str, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    expect_error(run("--url", filled, "query", *args), 2, *words)


@pytest.mark.parametrize("args", FAILING_READERS, ids=FAILING_READER_IDS)
def test_readers_never_create_a_file_or_its_folder(tmp_path: Path, args: tuple[str, ...]) -> None:
    target = tmp_path / "missing" / "events.db"
    result = run("--url", sqlite_url(target), *args)
    if args == ("db", "current"):  # it reports "none", and still creates nothing
        assert result.returncode == 0, result
        assert result.stdout.startswith("none"), result
    else:
        expect_error(result, 1, "does not exist")
    assert not target.parent.exists()


@pytest.mark.parametrize("args", FAILING_READERS, ids=FAILING_READER_IDS)
def test_readers_leave_an_empty_file_empty(tmp_path: Path, args: tuple[str, ...]) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = run("--url", sqlite_url(empty), *args)
    if args == ("db", "current"):
        assert result.returncode == 0, result
        assert result.stdout.startswith("none"), result
    else:
        expect_error(result, 1, "schema")
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_readers_leave_a_database_unchanged(filled: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(make_url(filled).database or "", copy)
    before = copy.read_bytes()
    for args in READERS:
        result = run("--url", sqlite_url(copy), *args)
        assert "Traceback" not in result.stderr, (args, result.stderr)
    assert copy.read_bytes() == before


def _schema_at(path: Path, revision: str) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:  # commits
            conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    finally:
        conn.close()


def test_a_schema_too_old_or_too_new_is_one_line(filled: str, tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    shutil.copy(make_url(filled).database or "", newer)
    _schema_at(newer, "9999")
    expect_error(run("--url", sqlite_url(newer), "query"), 1, "9999", "newer")
    expect_error(run("--url", sqlite_url(newer), "log", "task.created", "-s", "c"), 1, "9999")
    older = tmp_path / "older.db"
    shutil.copy(make_url(filled).database or "", older)
    _schema_at(older, "0001")
    expect_error(run("--url", sqlite_url(older), "query"), 1, "0001", "event-log db upgrade")


def _privileged(*probe: str) -> bool:
    return (
        shutil.which(probe[0]) is not None
        and subprocess.run([*probe, "true"], capture_output=True, check=False).returncode == 0
    )


# Root writes to any file whatever its mode: without these capabilities it cannot.
NO_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def test_a_read_only_file_is_named(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "events.db")
    fill(url, 1)
    time.sleep(1.1)  # the event is then older than prune's 1s
    (tmp_path / "events.db").chmod(0o444)
    prefix: Sequence[str] = ()
    if os.geteuid() == 0:
        if not _privileged(*NO_OVERRIDE):
            pytest.skip("running as root without setpriv: every file is writable to root")
        prefix = NO_OVERRIDE
    result = run("--url", url, "log", "task.created", "-s", "c", prefix=prefix)
    expect_error(result, 1, "events.db is read-only")
    # prune writes too: it says the same before it deletes anything.
    pruned = run("--url", url, "prune", "--older-than", "1s", "--yes", prefix=prefix)
    expect_error(pruned, 1, "events.db is read-only")
    # Readers still read it.
    assert run("--url", url, "query", "-F", "json", prefix=prefix).returncode == 0


def test_a_read_only_mount_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "mounted"
    folder.mkdir()
    url = sqlite_url(folder / "events.db")
    fill(url, 1)
    if not _privileged("unshare", "-m"):
        pytest.skip("cannot make a mount namespace here (unshare -m needs privileges)")
    script = f'mount --bind -o ro "{folder}" "{folder}" && exec "$@"'
    prefix = ["unshare", "-m", "sh", "-c", script, "sh"]
    result = run("--url", url, "log", "task.created", "-s", "c", prefix=prefix)
    expect_error(result, 1, "read-only file system")
    assert run("--url", url, "query", "-F", "json", prefix=prefix).returncode == 0


def test_one_vocabulary_for_limits_and_windows() -> None:
    """-n is --limit on every listing, and tail's lines (as in tail(1)), said so in its
    help; a window is a duration wherever one is asked for."""
    for command in ("query", "agent"):
        assert "-n, --limit" in ok(cli(None, command, "--help")).stdout
        assert "--all" in ok(cli(None, command, "--help")).stdout
    tail_help = " ".join(ok(cli(None, "tail", "--help")).stdout.split())
    assert "-n, --lines" in tail_help
    assert "-n counts lines here" in tail_help
    assert "--since DURATION" in ok(cli(None, "summary", "--help")).stdout
