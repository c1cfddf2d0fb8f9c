"""``python -m event_log.cli``: the same as the ``event-log`` command."""

from event_log.cli import main

main()
