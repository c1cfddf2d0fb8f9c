"""Which backend serves a URL, and the one-line refusals of URLs event-log cannot serve."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy.engine import make_url

from event_log import EventLogError, EventLogger
from event_log._errors import MissingDriverError
from event_log.backends import backend_for_url, backend_named


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite+aiosqlite:///x.db", "sqlite"),
        ("postgresql+asyncpg://u@h/db", "postgresql"),
        ("mysql+asyncmy://u@h/db", "mariadb"),
        ("mariadb+asyncmy://u@h/db", "mariadb"),
    ],
)
def test_each_url_gets_its_backend(url: str, name: str) -> None:
    assert backend_for_url(make_url(url)).name == name


def test_one_backend_object_per_database() -> None:
    assert backend_named("mysql") is backend_named("mariadb")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle+oracledb://u@h/db", "does not support the 'oracle' database"),
        ("postgresql+pg8000://u@h/db", "'pg8000' driver of postgresql: use postgresql+asyncpg://"),
        ("sqlite:///x.db", "'pysqlite' driver of sqlite: use sqlite+aiosqlite://"),
    ],
)
async def test_unsupported_urls_are_refused_at_open(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        await EventLogger.open(url)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("mysql+asyncmy://u@h/db", "event-log[mariadb]"),
        ("postgresql+asyncpg://u@h/db", "event-log[postgresql]"),
    ],
)
async def test_a_missing_driver_names_the_extra_to_install(
    url: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("asyncmy", "asyncpg") else found(name, *a),
    )
    with pytest.raises(MissingDriverError, match=re.escape(extra)) as caught:
        await EventLogger.open(url)
    assert isinstance(caught.value, EventLogError)
    assert isinstance(caught.value, ImportError)
    assert f"pip install '{extra}'" in str(caught.value)


def test_sqlite_needs_no_server_driver(tmp_path: object) -> None:
    """With asyncpg and asyncmy unimportable, SQLite works end to end, imports neither,
    and a PostgreSQL URL is refused with the install hint."""
    script = textwrap.dedent(
        """
        import asyncio, importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("asyncpg", "asyncmy"):
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, Block())
        import event_log

        async def main():
            async with event_log.EventLogger.open("sqlite+aiosqlite:///x.db") as log:
                await log.log_event("task.created", "test")
                assert (await log.list_events()).events
                assert await log.count_events(event_type="task.*") == 1
            try:
                await event_log.EventLogger.open("postgresql+asyncpg://u@h/db")
            except ImportError as exc:
                print(exc)
            assert "asyncpg" not in sys.modules and "asyncmy" not in sys.modules

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=str(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'event-log[postgresql]'" in result.stdout
