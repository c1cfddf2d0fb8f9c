"""A writer process of large batches, to be stopped mid-transaction (tests/test_pg_stalls.py).

``python batch_writer.py URL APPLICATION_NAME SIZE``: opens a logger whose
connections carry ``application_name`` (so the test finds its server process
in ``pg_stat_activity``) on a database already at head, prints ``ready``, then
writes batches of SIZE events with ``log_events`` (the COPY path for more than
255) until a line arrives on stdin. Batch ``b``'s events have ``source =
"batch-writer"`` and ``data = {"b": b, "i": i}``. After the last batch it
prints one JSON line: ``{"batches": B, "size": SIZE}``.
"""

import asyncio
import json
import sys
from typing import Any

from sqlalchemy.engine import make_url

from event_log import EventLogger
from event_log._engine import create_engine


async def main(url: str, application_name: str, size: int) -> None:
    parsed = make_url(url)
    connect_args: dict[str, Any]
    if parsed.get_driver_name() == "psycopg":
        connect_args = {"options": f"-c application_name={application_name}"}
    else:
        connect_args = {"server_settings": {"application_name": application_name}}
    engine = create_engine(parsed, connect_args=connect_args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        async with EventLogger(engine) as log:
            print("ready", flush=True)
            reading = loop.run_in_executor(None, sys.stdin.readline)
            reading.add_done_callback(lambda _: stop.set())
            batches = 0
            while not stop.is_set():
                data = [{"b": batches, "i": i} for i in range(size)]
                await log.log_events(
                    {"event_type": "tool.batched", "source": "batch-writer", "data": d}
                    for d in data
                )
                batches += 1
            assert log.stats.failed == 0, log.stats
            print(json.dumps({"batches": batches, "size": size}), flush=True)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
