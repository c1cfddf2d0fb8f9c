"""The event-log benchmark suite: ``python -m bench`` from the repository root.

One run measures, on the same machine:

- writes on SQLite (and PostgreSQL when reachable): the driver's raw limit, then
  ``log_event`` from 100 concurrent tasks, sequential ``log_event``, ``emit`` +
  ``flush`` and ``log_events`` batches, each in a fresh database and subprocess
  so its peak RSS is its own, three rounds in a full run with the median run
  reported (:mod:`bench.writes`, :mod:`bench.__main__`);
- memory: a million ``emit()`` calls (:mod:`bench.writes`, scenario ``emit-memory``);
- reads on a cached million-row SQLite database (:mod:`bench.dataset`,
  :mod:`bench.reads`);
- ``prune_events`` of half of that database while 20 tasks keep logging
  (:mod:`bench.prune`).

With ``--peers`` it measures instead event-log beside the other ways to write
the same events: the original module's way, a straightforward SQLAlchemy ORM
repository and the ``eventsourcing`` package's recorders (:mod:`bench.peers`).

It prints a table with the issue's targets and writes the same rows as JSON
(:mod:`bench.report`). Nothing here creates an engine or an event loop at import
time.
"""
