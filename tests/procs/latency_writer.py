"""A writer process that times its own writes (tests/test_pg_stalls.py).

``python latency_writer.py URL COUNT``: opens its own logger on a database
already at head, logs one warm-up event, prints ``ready``, waits for a line on
stdin, then awaits ``log_event`` COUNT times one after the other and prints one
JSON line: ``{"ids": [...], "seconds": [...]}``, each call's id and how long it
took.
"""

import asyncio
import json
import sys
import time

from event_log import EventLogger


async def main(url: str, count: int) -> None:
    async with EventLogger.open(url, migrate=False) as log:
        await log.log_event("system.info", "latency-writer", data={"warm": True})
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        ids: list[str] = []
        seconds: list[float] = []
        for i in range(count):
            began = time.perf_counter()
            event = await log.log_event("tool.called", "latency-writer", data={"i": i})
            seconds.append(time.perf_counter() - began)
            ids.append(event.id)
        print(json.dumps({"ids": ids, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
