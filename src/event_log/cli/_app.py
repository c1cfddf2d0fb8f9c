"""``event-log``: the click group, its global options, and the commands put together.

The commands live by group: ``_read`` (query, task, agent, tail),
``_summary`` (summary, stats), ``_write`` (log, import, export),
``_retention`` (prune), ``_db`` (db ...), ``_demo`` and ``_serve``. Each
handler parses its options, runs one coroutine through ``_runtime.run`` (the
only ``asyncio.run``) and renders the result with ``_output``; what it does to
the database is the library's public API.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from . import _db, _demo, _read, _retention, _serve, _summary, _write
from ._runtime import Settings

__all__ = ["app"]


class _Group(click.Group):
    """Errors as one line on stderr: usage errors exit 2, failures 1, no tracebacks."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = self._main(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _main(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            result = super().main(
                args, prog_name or "event-log", complete_var, standalone_mode=False, **extra
            )
            return result if isinstance(result, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # the help, not an error line
            return exc.exit_code
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            return exc.exit_code
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.Abort:
            click.echo("Aborted.", err=True)
            return 1
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # The reader went away (`event-log query | head`). click handles this itself
            # inside a command (quietly, status 1); this covers our own error output.
            # Point stdout at /dev/null so the interpreter's final flush stays quiet.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 1


@click.group(
    name="event-log",
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--url",
    envvar="EVENT_LOG_URL",
    show_envvar=True,
    metavar="URL",
    help="Database URL: sqlite+aiosqlite:///FILE, postgresql+asyncpg://USER@HOST/DB or "
    "mysql+asyncmy://USER@HOST/DB "
    "(default: sqlite+aiosqlite:///data/events.db).",
)
@click.version_option(package_name="event-log", prog_name="event-log")
@click.pass_context
def app(ctx: click.Context, url: str | None) -> None:
    """Look at, follow, export and maintain an event-log database.

    \b
      event-log demo                        fill the database with a swarm run
      event-log summary --every 5m          what happened in the last hour
      event-log task TASK_ID                one task's timeline
      event-log tail -f --type 'task.*'     follow events live (Ctrl-C stops)
      event-log query --since 2h -F json    events as JSON lines
    """
    source = ctx.get_parameter_source("url")
    ctx.obj = Settings(url, url_given=source == click.core.ParameterSource.COMMANDLINE)


# In the order `event-log --help` has always listed them (click sorts them by name).
for _command in (
    _db.db,
    _write.log_command,
    _read.query,
    _read.task,
    _read.agent,
    _summary.summary,
    _read.tail,
    _retention.prune,
    _write.export,
    _write.import_command,
    _summary.stats,
    _demo.demo,
    _serve.serve,
):
    app.add_command(_command)
