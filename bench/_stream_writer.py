"""The writer process of ``bench.stream``: ``python -m bench._stream_writer URL RATE SECONDS``.

It opens ``EventLogger.open(URL)``, prints ``{"ready": true}``, waits for the
command ``go`` on stdin, then logs events at a steady RATE per second for
SECONDS: event ``seq`` is due at ``seq / RATE`` seconds after ``go``, and
each due event is one ``log_event`` call of its own, started as a task (at
most ``MAX_IN_FLIGHT`` at once, so a slow commit holds back the calls after
it rather than piling them up). Each event's data is ``{"seq": seq, "sent":
time.time()}``, ``sent`` read as its call is made. Then it waits for the calls
in flight and prints ``{"events": N, "seconds": ..., "behind_max_ms": ...}``:
the events written (numbered 0..N-1), the seconds from ``go`` to the last
commit, how far behind its schedule the writer fell at worst, and its CPU seconds
(the ``ready`` line has them too).
"""

from __future__ import annotations

import asyncio
import time

from event_log import EventLogError, EventLogger

from ._stream_child import ChildError, Commands, report, run_child

__all__ = ["EVENT_TYPE", "MAX_IN_FLIGHT", "SOURCE"]

EVENT_TYPE = "bench.stream"
SOURCE = "stream-bench"
MAX_IN_FLIGHT = 256
_TICK_S = 0.002  # the longest the writer sleeps between looks at its schedule


async def _write(
    log: EventLogger, rate: float, seconds: float, padding: int = 0
) -> dict[str, float]:
    total = int(rate * seconds)
    filler = "x" * padding
    in_flight: set[asyncio.Task[object]] = set()
    failures: list[BaseException] = []

    def done(task: asyncio.Task[object]) -> None:
        in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    behind_max = 0.0
    start = time.monotonic()
    seq = 0
    while seq < total and not failures:
        elapsed = time.monotonic() - start
        due = min(total, int(elapsed * rate) + 1)
        while seq < due and len(in_flight) < MAX_IN_FLIGHT:
            behind_max = max(behind_max, elapsed - seq / rate)
            task: asyncio.Task[object] = asyncio.create_task(
                log.log_event(EVENT_TYPE, SOURCE, data=_data(seq, filler))
            )
            in_flight.add(task)
            task.add_done_callback(done)
            seq += 1
        next_due = start + seq / rate
        await asyncio.sleep(min(_TICK_S, max(0.0, next_due - time.monotonic())))
    while in_flight and not failures:
        await asyncio.wait(set(in_flight))
    if failures:
        raise ChildError(f"log_event failed: {failures[0]!r}")
    return {
        "events": seq,
        "seconds": time.monotonic() - start,
        "behind_max_ms": behind_max * 1000.0,
        "cpu_s": time.process_time(),
    }


def _data(seq: int, filler: str) -> dict[str, object]:
    data: dict[str, object] = {"seq": seq, "sent": time.time()}
    if filler:
        data["padding"] = filler
    return data


async def _main(argv: list[str]) -> None:
    if len(argv) not in (3, 4):
        raise ChildError("usage: python -m bench._stream_writer URL RATE SECONDS [PADDING]")
    url, rate, seconds = argv[0], float(argv[1]), float(argv[2])
    padding = int(argv[3]) if len(argv) == 4 else 0
    if not rate > 0 or not seconds > 0:
        raise ChildError("RATE and SECONDS must be above 0")
    commands = await Commands.open()
    try:
        async with EventLogger.open(url, migrate=False) as log:
            report({"ready": True, "cpu_s": time.process_time()})
            await commands.next("go")
            result = await commands.unless_closed(_write(log, rate, seconds, padding))
    except EventLogError as exc:
        raise ChildError(f"{type(exc).__name__}: {exc}") from None
    report(result)


if __name__ == "__main__":
    raise SystemExit(run_child("bench stream writer", _main))
