"""``python -m bench.alternate``: PostgreSQL write scenarios and the raw limit, in turn.

A full ``python -m bench`` run measures each scenario three times in a row, so
a change of the host's pace between scenarios moves their ratios. This runs
the raw limit and each named scenario one after another, round after round,
each in a fresh process on an emptied table of one scratch database, and
prints every round's ratios and, per scenario, their range and median: the
side-by-side figures of ``bench/FINDINGS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

import event_log

from . import postgres
from .writes import SCENARIOS, ScenarioError, run_scenario

__all__ = ["main"]

_TIMEOUT_S = 600.0


def _ratios(per_second: dict[str, list[float]], scenario: str) -> list[float]:
    return [x / raw for x, raw in zip(per_second[scenario], per_second["raw"], strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alternate", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="+",
        choices=sorted(set(SCENARIOS) - {"raw", "emit_memory"}),
        help="write scenarios to set beside the raw limit",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument("-n", "--events", type=int, default=50_000, help="events per run")
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        default=os.environ.get(postgres.PG_URL_ENV, postgres.DEFAULT_ADMIN_URL),
        help=(
            "an asyncpg URL of a server where a scratch database may be created and dropped "
            f"(default: ${postgres.PG_URL_ENV}, else {postgres.DEFAULT_ADMIN_URL})"
        ),
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.events < 1:
        parser.error("--rounds and --events must be at least 1")
    why = postgres.unreachable(args.postgres_url)
    if why is not None:
        print(why, file=sys.stderr)
        return 1
    order = ["raw", *dict.fromkeys(args.scenarios)]
    per_second: dict[str, list[float]] = {name: [] for name in order}
    with postgres.scratch_database(args.postgres_url) as url:
        asyncio.run(event_log.upgrade(url))
        for round_ in range(1, args.rounds + 1):
            for name in order:
                postgres.truncate(url)
                try:
                    result = run_scenario(name, url, args.events, timeout=_TIMEOUT_S)
                except ScenarioError as exc:
                    print(exc, file=sys.stderr)
                    return 1
                per_second[name].append(result["events"] / result["seconds"])
            line = ", ".join(f"{name} {_ratios(per_second, name)[-1]:.2f}x" for name in order[1:])
            print(f"round {round_}: raw {per_second['raw'][-1]:,.0f} events/s; {line}", flush=True)
    header = ("scenario", "events/s (median)", "vs raw: min", "median", "max")
    print("\n{:28}  {:>17}  {:>11}  {:>6}  {:>5}".format(*header))
    for name in order:
        ratios = _ratios(per_second, name)
        print(
            f"{name:28}  {statistics.median(per_second[name]):17,.0f}  "
            f"{min(ratios):10.2f}x  {statistics.median(ratios):5.2f}x  {max(ratios):4.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
