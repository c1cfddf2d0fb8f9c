"""``event-log``: the command line over :class:`event_log.EventLogger` (the ``cli`` extra).

``main()`` is the console script; ``app`` is the click group, for ``CliRunner``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._app import app

__all__ = ["app", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``event-log`` with ``argv`` (default: ``sys.argv[1:]``) and exit with its status."""
    app.main(argv, prog_name="event-log")
