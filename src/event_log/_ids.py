"""Time-ordered UUIDv7 ids (RFC 9562), monotonic within the process.

Hand-rolled on purpose: the standard library of Python 3.11 has no ``uuid7``,
and the algorithm is a dozen lines. RFC 9562 method 3 ("monotonic random"):
the 74 bits after the millisecond timestamp are random, and when a new value
would not exceed the previous one it becomes the previous one plus a small
random step, so ids made one after another strictly increase even within a
millisecond or when the wall clock steps back.
"""

from __future__ import annotations

import random
import threading
import time

__all__ = ["new_id", "new_ids"]

_RANDOM_BITS = 74  # 12 bits of rand_a + 62 bits of rand_b
_lock = threading.Lock()
_last = 0


def _next_values(count: int) -> list[int]:
    """``count`` increasing values: the first as RFC 9562 method 3 makes it, then random steps."""
    global _last
    if count < 1:
        return []
    # random's global generator is reseeded after fork(), so two processes
    # never share a sequence; ids need uniqueness, not secrecy.
    candidate = (time.time_ns() // 1_000_000) << _RANDOM_BITS | random.getrandbits(_RANDOM_BITS)
    step = random.getrandbits
    with _lock:
        if candidate <= _last:
            # A random step keeps ids from different threads hard to collide.
            candidate = _last + 1 + step(32)
        values = [candidate]
        for _ in range(count - 1):
            candidate += 1 + step(32)
            values.append(candidate)
        _last = candidate
    return values


# Version 7 in bits 76..79 and the RFC 4122 variant (0b10) in bits 62..63.
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_B_BITS = 62
_RAND_B_MASK = (1 << _RAND_B_BITS) - 1
_VARIANT = 0b10 << _RAND_B_BITS


def _canonical(value: int) -> str:
    # unix_ts_ms (48 bits) | ver | rand_a (12 bits) | var | rand_b (62 bits)
    bits = (
        ((value >> _RANDOM_BITS) << 80)
        | (((value >> _RAND_B_BITS) & 0xFFF) << 64)
        | (value & _RAND_B_MASK)
        | _VERSION_AND_VARIANT
    )
    h = "%032x" % bits  # noqa: UP031 - faster than format() on the hot path
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _canonical_many(values: list[int]) -> list[str]:
    """``_canonical`` of each value, formatting only once what the ids of a batch share.

    The first 19 characters (timestamp, version, rand_a) come from the bits
    above rand_b, which a batch's small steps almost never carry into; only
    the last 17 (variant and rand_b) are formatted per id.
    """
    ids: list[str] = []
    append = ids.append
    shared = -1
    prefix = ""
    for value in values:
        high = value >> _RAND_B_BITS
        if high != shared:
            shared = high
            prefix = _canonical(value)[:19]
        low = "%016x" % ((value & _RAND_B_MASK) | _VARIANT)
        append(f"{prefix}{low[:4]}-{low[4:]}")
    return ids


def new_id() -> str:
    """A new canonical lowercase UUIDv7 string, greater than every earlier one."""
    return _canonical(_next_values(1)[0])


def new_ids(count: int) -> list[str]:
    """``count`` new ids in increasing order, for one clock reading and one lock.

    All carry the millisecond of that reading (method 3's "increment within
    the same millisecond"), so a batch costs less per id than ``new_id``.
    """
    return _canonical_many(_next_values(count))
