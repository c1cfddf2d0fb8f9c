"""Fills the disk (a file size limit) under a logger, then gives the space back.

Prints one JSON line: how writes failed, whether old events survived, and
whether logging resumed.
"""

import asyncio
import json
import os
import resource
import signal
import sqlite3
import sys

from event_log import EventLogger, StorageError


def largest_file(path: str) -> int:
    """The size of the database or its WAL, whichever is larger."""
    return max(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


async def main(path: str) -> None:
    report: dict[str, object] = {}
    async with EventLogger.open(f"sqlite+aiosqlite:///{path}") as log:
        old = [await log.log_event("task.created", "disk", data={"i": i}) for i in range(50)]
        await log.flush()
        largest = largest_file(path)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest + 32 * 1024, hard))
        written, failed_with, failed = 0, None, 0
        for i in range(400):
            try:
                await log.log_event("tool.called", "disk", data={"pad": "x" * 8_000, "i": i})
                written += 1
            except StorageError as exc:
                failed_with = type(exc).__name__
                failed += 1
                if failed >= 5:
                    break
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space returns
        after = await log.log_event("task.completed", "disk")
        report["failed_with"] = failed_with
        report["written_while_full"] = written
        report["failed_after"] = failed
        report["old_events_intact"] = all([await log.get_event(e.id) == e for e in old])
        report["written_after_space_returned"] = await log.get_event(after.id) == after
    conn = sqlite3.connect(path)
    report["integrity"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    print(json.dumps(report))


asyncio.run(main(sys.argv[1]))
