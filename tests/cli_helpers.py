"""Helpers shared by the command line's tests: run a command, check how it ended."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner, Result

from event_log.cli import app

__all__ = ["cli", "fails", "ok"]


def cli(url: str | None, *args: str, input: str | None = None, **kwargs: Any) -> Result:
    argv = (["--url", url] if url is not None else []) + list(args)
    return CliRunner().invoke(app, argv, input=input, catch_exceptions=False, **kwargs)


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
