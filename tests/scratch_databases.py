"""The names of the databases a test session makes on the servers, and which of them a
session that no longer runs left behind.

A session drops its databases when it ends; one that was killed (a timeout, a
SIGKILL) cannot. Each name carries the process id of the pytest process that
made it, so the next session on this machine can tell a leftover (its process
is gone) from a database another session is using right now, and drop it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable

__all__ = ["LIKE", "leftovers", "session_database_name"]

# The names, as a LIKE pattern for listing them on either server.
LIKE = r"event\_log\_test\_%"
_NAME = re.compile(r"^event_log_test_(\d+)_[0-9a-f]{8}(?:_[a-z]+)?$")
_THIS_MACHINE = ("127.0.0.1", "localhost", "::1")


def session_database_name() -> str:
    """A name for this process's database (the head databases add a suffix to it)."""
    return f"event_log_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def leftovers(names: Iterable[str], host: str | None) -> list[str]:
    """Those of ``names`` made by a process that no longer runs, on a server on this
    machine (elsewhere a process id says nothing)."""
    if host not in _THIS_MACHINE:
        return []
    return [
        name for name in names if (m := _NAME.match(name)) is not None and not _running(int(m[1]))
    ]
