"""The command line as a layer: filter options made from EventFilter, and the extras.

``event-log`` is installed with the library whether or not the ``cli`` extra
is: without click it must say which extra to install, in one line. The
installed script is run with a ``sitecustomize`` on ``PYTHONPATH`` that makes
the named packages unimportable, as on a machine without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from pydantic.fields import FieldInfo

import event_log.cli
from cli_helpers import cli, fails, ok
from event_log import EventFilter, EventLogger
from event_log.cli import _filter_options
from event_log.cli._app import app

EXE = Path(sys.executable).with_name("event-log")
FILTERING = ("query", "tail", "export")

_BLOCKER = """
import sys

BLOCKED = {blocked!r}


class _Missing:
    # A meta path finder that makes the packages above look uninstalled.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
"""


def without(
    tmp_path: Path, *packages: str, args: tuple[str, ...] = ("--help",)
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``event-log`` with ``packages`` unimportable."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER.format(blocked=set(packages)))
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def _command(name: str) -> click.Command:
    command = app.commands[name]
    assert isinstance(command, click.Command)
    return command


# -- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILTERING)
def test_every_filter_field_is_an_option_of_every_filtering_command(name: str) -> None:
    options = {p.name: p for p in _command(name).params if isinstance(p, click.Option)}
    for field, info in EventFilter.model_fields.items():
        option = options[field]
        assert f"--{field.replace('_', '-')}" in option.opts
        assert info.description is not None
        assert option.help is not None
        assert option.help.startswith(info.description.replace("`", "'")), (field, option.help)
    assert options["event_type"].multiple
    assert options["data_where"].multiple
    assert not options["source"].multiple
    assert {"-t", "--type"} <= set(options["event_type"].opts)
    assert {"-T", "--exclude-type"} <= set(options["exclude_event_type"].opts)
    assert "--where" in options["data_where"].opts


def test_a_field_added_to_the_filter_becomes_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # The options are made from whatever fields the model has, when a command is declared.
    fields = dict(EventFilter.model_fields)
    extra = FieldInfo(annotation=str | None, default=None, description="Exact ticket.")
    monkeypatch.setattr(EventFilter, "model_fields", {**fields, "ticket": extra})

    @click.command()
    @_filter_options.filter_options
    def command(**options: object) -> None:
        pass

    ticket = next(p for p in command.params if p.name == "ticket")
    assert isinstance(ticket, click.Option)
    assert ticket.opts == ["--ticket"]
    assert ticket.help == "Exact ticket."


async def _seed(url: str) -> None:
    async with EventLogger.open(url) as log:
        await log.log_event("task.created", "alpha", task_id="t-1", data={"n": 1})
        await log.log_event("tool.called", "beta", data={"n": 2})
        await log.log_event("tool.failed", "gamma", data={"n": 3})


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    asyncio.run(_seed(url))
    return url


def _sources(url: str, command: str, *args: str) -> list[str]:
    extra = ("-o", "-") if command == "export" else ("-F", "json")
    out = ok(cli(url, command, *args, *extra)).stdout
    import json

    return sorted(json.loads(line)["source"] for line in out.splitlines() if line.strip())


@pytest.mark.parametrize("command", FILTERING)
def test_every_command_filters_on_every_field(seeded: str, command: str) -> None:
    url = seeded
    assert _sources(url, command, "--event-type", "tool.*") == ["beta", "gamma"]
    assert _sources(url, command, "--type", "task.created,tool.failed") == ["alpha", "gamma"]
    assert _sources(url, command, "--exclude-source", "alpha,beta") == ["gamma"]
    assert _sources(url, command, "--exclude-source", "alpha", "--exclude-source", "gamma") == [
        "beta"
    ]
    assert _sources(url, command, "--exclude-event-type", "tool.*") == ["alpha"]
    assert _sources(url, command, "--task-id", "t-1") == ["alpha"]
    assert _sources(url, command, "--data-contains", '{"n": 2}') == ["beta"]
    assert _sources(url, command, "--data-where", "n>=2", "--where", "n<3") == ["beta"]
    assert _sources(url, command, "--since", "1h", "--until", "2999-01-01") == [
        "alpha",
        "beta",
        "gamma",
    ]
    extra = ("-o", "-") if command == "export" else ()
    fails(cli(url, command, "--exclude-type", "Nope", *extra), 2, "--exclude-type", "'Nope'")
    fails(cli(url, command, "--data-where", "n", *extra), 2, "--data-where", "KEY OP VALUE")
    fails(cli(url, command, "--source", "\x00", *extra), 2, "--source", "NUL")


# -- the extras ---------------------------------------------------------------------------


def test_the_package_imports_without_click() -> None:
    code = "import sys, event_log.cli; assert 'click' not in sys.modules; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


@pytest.mark.parametrize("missing", [("click", "rich"), ("rich",)])
def test_without_the_cli_extra_the_script_names_it(
    tmp_path: Path, missing: tuple[str, ...]
) -> None:
    result = without(tmp_path, *missing, args=("query",))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{event_log.cli.INSTALL_HINT}\n"
    assert "pip install 'event-log[cli]'" in result.stderr


def test_another_import_error_is_not_taken_for_the_missing_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> click.Group:
        raise ModuleNotFoundError("No module named 'event_log._gone'", name="event_log._gone")

    monkeypatch.setattr(event_log.cli, "_load_app", broken)
    with pytest.raises(ModuleNotFoundError, match="_gone"):
        event_log.cli.main(["--help"])


def test_serve_without_the_web_extra_names_it(tmp_path: Path) -> None:
    result = without(tmp_path, "fastapi", "uvicorn", "starlette", args=("serve",))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: serve needs the web extra")
    assert "pip install 'event-log[web]'" in lines[0]
    # The rest of the command line works without it.
    assert without(tmp_path, "fastapi", "uvicorn", "starlette").returncode == 0


def test_a_driver_that_is_not_installed_is_named_in_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    result = without(tmp_path, "psycopg", args=("--url", url, "query"))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "event-log[psycopg]" in lines[0]
