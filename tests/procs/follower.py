"""A follower process (tests/test_many_followers.py).

``python follower.py URL [--cursor CURSOR]``: opens its own logger on a
database already at head and follows it, from CURSOR when given. Once the
follower's start position is fixed (its ``cursor`` is no longer None) it
prints ``{"ready": cursor}``; then, for every event, one JSON line with the
event's id, its data and the follower's ``cursor`` just after it, flushed at
once, so a process killed at any moment has printed whole lines only, each
with a cursor to resume from. Runs until killed.
"""

import argparse
import asyncio
import json

from event_log import EventLogger


async def main(url: str, cursor: str | None) -> None:
    async with EventLogger.open(url, migrate=False) as log:
        follower = log.follow(cursor=cursor)
        first = asyncio.ensure_future(anext(follower))
        # Nothing signals the start: the property is polled.
        while follower.cursor is None and not first.done():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        print(json.dumps({"ready": follower.cursor}), flush=True)
        event = await first
        while True:
            line = {"id": event.id, "data": event.data, "cursor": follower.cursor}
            print(json.dumps(line), flush=True)
            event = await anext(follower)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--cursor")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.cursor))
