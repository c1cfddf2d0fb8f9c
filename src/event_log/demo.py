"""``python -m event_log.demo``: run the reference swarm and show what it logged.

It runs :func:`event_log.swarm.run_swarm` against the database of ``--url``
(default: ``$EVENT_LOG_URL``, then ``sqlite+aiosqlite:///data/events.db``),
prints a line per finished task on stderr, and ends with the last hour's
summary and one task's full timeline on stdout. This is the edge of the
program: the only place that reads the environment (through
``EventLogger.open(url=None)``) and calls ``asyncio.run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from . import Event, EventLogger
from .swarm import SwarmProgress, SwarmReport, run_swarm

__all__ = ["main"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _scale(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m event_log.demo",
        description="Run a small agent swarm that logs every step, then show the log.",
    )
    parser.add_argument("--agents", type=_positive_int, default=5, help="agents (default 5)")
    parser.add_argument("--tasks", type=_positive_int, default=8, help="tasks (default 8)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--url",
        default=None,
        help="SQLAlchemy async URL (default: $EVENT_LOG_URL, else sqlite+aiosqlite:///data/events.db)",
    )
    parser.add_argument(
        "--time-scale",
        type=_scale,
        default=1.0,
        help="multiplies every simulated delay (default 1.0: a few seconds; 0.01: instant)",
    )
    parser.add_argument(
        "--failure-rate",
        type=_rate,
        default=0.25,
        help="chance that a task fails, by a tool error or an agent crash (default 0.25)",
    )
    parser.add_argument(
        "--concurrency", type=_positive_int, default=3, help="tasks worked at once (default 3)"
    )
    return parser


def _show_progress(progress: SwarmProgress) -> None:
    outcome = progress.outcome
    how = f"completed by {outcome.agent_id}"
    if outcome.status == "failed":
        verb = "CRASHED" if outcome.crashed else "failed"
        how = f"{verb} under {outcome.agent_id}: {outcome.error}"
    print(
        f"[{progress.done}/{progress.total}] {outcome.task_id} {how} "
        f"(won at {outcome.bid_sats} sats against {outcome.bids - 1} other bid(s); "
        f"tools: {', '.join(outcome.tools)})",
        file=sys.stderr,
        flush=True,
    )


def _format_event(event: Event) -> str:
    who = event.agent_id or event.source
    data = dict(event.data or {})
    traceback = data.pop("traceback", None)
    line = (
        f"  {event.timestamp:%H:%M:%S.%f}  {event.event_type:<20} {who:<24} "
        f"{json.dumps(data, ensure_ascii=False) if data else ''}"
    ).rstrip()
    if isinstance(traceback, str):
        line += "\n" + "".join(f"      | {tb_line}\n" for tb_line in traceback.splitlines())
    return line.rstrip()


def _pick_task(report: SwarmReport) -> str:
    """The most telling timeline: a crash if there was one, else a failure, else the first."""
    crashed = [o.task_id for o in report.outcomes if o.crashed]
    failed = [o.task_id for o in report.outcomes if o.status == "failed"]
    return (crashed or failed or list(report.task_ids))[0]


async def _run(args: argparse.Namespace) -> None:
    async with EventLogger.open(args.url) as log:
        print(
            f"Running {args.agents} agents on {args.tasks} tasks (seed {args.seed})...",
            file=sys.stderr,
            flush=True,
        )
        report = await run_swarm(
            log,
            agents=args.agents,
            tasks=args.tasks,
            seed=args.seed,
            time_scale=args.time_scale,
            failure_rate=args.failure_rate,
            max_concurrent=args.concurrency,
            on_progress=_show_progress,
        )
        print(
            f"Run {report.run_id}: {report.completed} completed, {report.failed} failed.",
            file=sys.stderr,
        )
        if report.dropped_log_records:
            print(
                f"warning: {report.dropped_log_records} log record(s) could not be logged",
                file=sys.stderr,
            )

        print("Last hour's summary:")
        for event_type, count in (await log.get_event_summary(60)).items():
            print(f"  {event_type:<22} {count}")

        task_id = _pick_task(report)
        print(f"\nTimeline of {task_id}:")
        for event in await log.get_task_events(task_id):
            print(_format_event(event))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the demo, return the exit status."""
    args = _parser().parse_args(argv)
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
