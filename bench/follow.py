"""follow() on PostgreSQL: from another process's ``log_event`` to the follower's yield.

The follower's logger polls only every 30 s, so an event that reaches it within
milliseconds was announced by the writer's commit (``LISTEN``/``NOTIFY``). A
child process logs one event at a time, each when told to, and prints the
monotonic clock read just before its ``log_event`` call; the parent reads the
same clock when the follower yields the event. The clock is system-wide
(``CLOCK_MONOTONIC``), so the two readings compare; the delay includes the
write itself, so it bounds the commit-to-follower time from above.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from typing import Any

from event_log import EventLogger

from .common import summarize_ms

__all__ = ["POLL_INTERVAL_S", "follow_latency"]

# The follower's polling interval: far beyond any delay NOTIFY allows.
POLL_INTERVAL_S = 30.0
# How long one event may take to arrive before the measurement fails.
_TIMEOUT_S = 10.0

_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from event_log import EventLogger

    async def main(url, count):
        async with EventLogger.open(url, migrate=False) as log:
            await log.log_event("system.info", "follow-bench", data={"warm_up": True})
            print("ready", flush=True)
            for i in range(count):
                sys.stdin.readline()
                start = time.monotonic()
                await log.log_event("tool.called", "follow-bench", data={"i": i})
                print(start, flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def follow_latency(url: str, runs: int) -> dict[str, Any]:
    """Median and p99 delay of ``runs`` events from a writer process to a follower."""
    async with EventLogger.open(url, migrate=False, poll_interval=POLL_INTERVAL_S) as log:
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            url,
            str(runs),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert writer.stdin is not None
        assert writer.stdout is not None
        follower = log.follow()
        delays: list[float] = []
        try:
            if await writer.stdout.readline() != b"ready\n":
                raise RuntimeError("the writer process did not start")
            for i in range(runs):
                waiting = asyncio.ensure_future(follower.__anext__())
                await asyncio.sleep(0.01)  # the follower has begun and waits
                writer.stdin.write(b"go\n")
                await writer.stdin.drain()
                event = await asyncio.wait_for(waiting, _TIMEOUT_S)
                received = time.monotonic()
                started = float(await writer.stdout.readline())
                if event.data != {"i": i}:
                    raise RuntimeError(f"the follower yielded {event.data!r}, expected i={i}")
                delays.append(received - started)
        finally:  # closing the logger ends the follower
            if writer.returncode is None:
                writer.stdin.close()
                try:
                    await asyncio.wait_for(writer.wait(), _TIMEOUT_S)
                except TimeoutError:
                    writer.kill()
                    await writer.wait()
    if writer.returncode != 0:
        raise RuntimeError(f"the writer process exited with {writer.returncode}")
    return {"runs": runs, **summarize_ms(delays)}
