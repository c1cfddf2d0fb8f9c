"""follow() on PostgreSQL: from another process's ``log_event`` to the follower's yield.

The follower's logger polls only every 30 s, so an event that reaches it within
milliseconds was announced by the writer's commit (``LISTEN``/``NOTIFY``). A
child process logs one event at a time, each when told to, and prints the
monotonic clock read just before its ``log_event`` call; the parent reads the
same clock when the follower yields the event. The clock is system-wide
(``CLOCK_MONOTONIC``), so the two readings compare; the delay includes the
write itself, so it bounds the commit-to-follower time from above.

The follower starts after the writer's warm-up event (``cursor=``), and one
unmeasured round opens its LISTEN connection: an event committed while the
follower was still starting is then yielded from storage, not lost, and is
not counted.
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
        loop = asyncio.get_running_loop()
        async with EventLogger.open(url, migrate=False) as log:
            warm_up = await log.log_event("system.info", "follow-bench", data={"warm_up": True})
            print(warm_up.id, flush=True)
            for i in range(count):
                # Off the event loop: the logger sends its wake-up after the commit,
                # on the loop, so a loop blocked on stdin would hold it back.
                await loop.run_in_executor(None, sys.stdin.readline)
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
            str(runs + 1),  # round 0 starts the follower and is not measured
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert writer.stdin is not None
        assert writer.stdout is not None
        delays: list[float] = []
        try:
            warm_up_id = (await writer.stdout.readline()).decode().strip()
            if not warm_up_id:
                raise RuntimeError("the writer process did not start")
            follower = log.follow(cursor=warm_up_id)
            for i in range(runs + 1):
                waiting = asyncio.ensure_future(follower.__anext__())
                await asyncio.sleep(0.01)  # it waits (round 0 may still be starting)
                writer.stdin.write(b"go\n")
                await writer.stdin.drain()
                try:
                    event = await asyncio.wait_for(waiting, _TIMEOUT_S)
                except TimeoutError:
                    raise RuntimeError(
                        f"event i={i} did not reach the follower within {_TIMEOUT_S:.0f} s"
                    ) from None
                received = time.monotonic()
                started = float(await writer.stdout.readline())
                if event.data != {"i": i}:
                    raise RuntimeError(f"the follower yielded {event.data!r}, expected i={i}")
                if i > 0:
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
