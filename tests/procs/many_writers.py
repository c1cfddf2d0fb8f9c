"""One of several writer processes on the same database (tests/test_many_writers.py).

``python many_writers.py URL PROC TASKS EVENTS [PAUSE]``: opens its own logger,
prints ``ready``, waits for a line on stdin, then runs TASKS tasks at once.
Task ``t`` logs EVENTS events in order, ``data = {"proc": PROC, "task": t,
"i": i}``, in runs of ten: four ``log_event``, three ``emit``, then one
``log_events`` batch of three, sleeping PAUSE seconds (default 0) after each
call. After ``flush()`` it prints one JSON line: the id of every event with
its (task, i).
"""

import asyncio
import json
import sys

from event_log import EventLogger


async def main(url: str, proc: int, tasks: int, events: int, pause: float) -> None:
    async with EventLogger.open(url, migrate=False) as log:
        await log.log_event("system.info", "many-writers", data={"proc": proc, "warm": True})
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        logged: list[tuple[str, int, int]] = []

        async def task(t: int) -> None:
            i = 0
            while i < events:
                step = i % 10
                source = f"p{proc}"
                if step < 4:
                    data = {"proc": proc, "task": t, "i": i}
                    event = await log.log_event(
                        "tool.called", source, task_id=f"{proc}-{t}", data=data
                    )
                    logged.append((event.id, t, i))
                    i += 1
                    if pause:
                        await asyncio.sleep(pause)
                elif step < 7:
                    data = {"proc": proc, "task": t, "i": i}
                    event = log.emit("tool.emitted", source, task_id=f"{proc}-{t}", data=data)
                    logged.append((event.id, t, i))
                    i += 1
                    await asyncio.sleep(pause)
                else:
                    n = min(3, events - i)
                    batch = [
                        {
                            "event_type": "tool.batched",
                            "source": source,
                            "task_id": f"{proc}-{t}",
                            "data": {"proc": proc, "task": t, "i": i + k},
                        }
                        for k in range(n)
                    ]
                    stored = await log.log_events(batch)
                    logged.extend((e.id, t, i + k) for k, e in enumerate(stored))
                    i += n
                    if pause:
                        await asyncio.sleep(pause)

        await asyncio.gather(*(task(t) for t in range(tasks)))
        await log.flush()
        assert log.stats.failed == 0, log.stats
        print(json.dumps(logged), flush=True)


if __name__ == "__main__":
    url, proc, tasks, events = sys.argv[1], *map(int, sys.argv[2:5])
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    asyncio.run(main(url, proc, tasks, events, pause))
