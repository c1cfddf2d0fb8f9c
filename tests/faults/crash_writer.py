"""Logs events from four tasks and prints each id once its log_event returned."""

import asyncio
import sys

from event_log import EventLogger


async def main(url: str) -> None:
    async with EventLogger.open(url, migrate=False) as log:

        async def worker(n: int) -> None:
            i = 0
            while True:
                event = await log.log_event("tool.called", "crash-test", data={"w": n, "i": i})
                sys.stdout.write(event.id + "\n")
                sys.stdout.flush()
                i += 1

        await asyncio.gather(*(worker(n) for n in range(4)))


asyncio.run(main(sys.argv[1]))
