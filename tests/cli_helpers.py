"""Helpers shared by the command line's tests: run a command, check how it ended."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from click.testing import CliRunner, Result

from event_log.cli import app

__all__ = ["cli", "fails", "interruptible", "ok"]


def cli(url: str | None, *args: str, input: str | None = None, **kwargs: Any) -> Result:
    argv = (["--url", url] if url is not None else []) + list(args)
    return CliRunner().invoke(app, argv, input=input, catch_exceptions=False, **kwargs)


# A job started in the background (``cmd &``, nohup) ignores SIGINT, and so
# does every process it starts, as Ctrl-C never reaches a background job.
_SIGINT_AT_ITS_DEFAULT = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def interruptible(command: Sequence[str]) -> list[str]:
    """``command`` (a path first) run with SIGINT at its default action, as from a terminal.

    A test that stops a process with SIGINT needs this: started from a test
    run that ignores SIGINT, the process would rightly ignore it too.
    """
    return [sys.executable, "-c", _SIGINT_AT_ITS_DEFAULT, *command]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int, *words: str) -> str:
    """The command failed with ``code`` and printed one line naming ``words``."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("Error: ")
    assert "Traceback" not in result.output
    for word in words:
        assert word in message, (word, message)
    return message
