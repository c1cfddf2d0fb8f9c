"""emit()s events, printing each id, until SIGTERM; then shuts down cleanly.

SIGTERM cancels the main task; leaving ``async with EventLogger.open(...)``
closes the logger, which writes everything emitted before returning.
"""

import asyncio
import signal
import sys

from event_log import EventLogger


async def main(url: str) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with EventLogger.open(url, migrate=False) as log:
            i = 0
            while True:
                event = log.emit("tool.called", "term-test", data={"i": i})
                sys.stdout.write(event.id + "\n")
                i += 1
                if i % 100 == 0:
                    sys.stdout.flush()
                    await asyncio.sleep(0.001)
    except asyncio.CancelledError:
        sys.stdout.flush()


asyncio.run(main(sys.argv[1]))
