"""``event-log``: the command line over :class:`event_log.EventLogger` (the ``cli`` extra).

``main()`` is the console script; ``app`` is the click group, for ``CliRunner``.
The script is installed with the library, with or without the extra, so
nothing here imports click or rich until ``main()`` runs: without them,
``event-log`` says in one line which extra to install.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

__all__ = ["app", "main"]

# What the cli extra installs: an ImportError naming another module is a real fault.
CLI_EXTRA_MODULES = frozenset({"click", "rich"})
INSTALL_HINT = "event-log: the command line needs its extra: pip install 'event-log[cli]'"


def _load_app() -> click.Group:
    from ._app import app

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``event-log`` with ``argv`` (default: ``sys.argv[1:]``) and exit with its status."""
    try:
        app = _load_app()
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in CLI_EXTRA_MODULES:
            raise
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(1)
    app.main(argv, prog_name="event-log")


def __getattr__(name: str) -> Any:
    # ``from event_log.cli import app`` loads the commands (and click) on demand.
    if name == "app":
        return _load_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
