"""``--where 'KEY OP VALUE'``: one ``data_where`` condition as typed on a command line.

The first operator in the text splits it (two-character operators before their
one-character prefixes), so keys cannot contain ``=``, ``<`` or ``>``; use
``--data-contains`` for those. VALUE is JSON when it parses (``100``, ``true``,
``null``, ``"42"``), else the text itself (``gpt-4``); ``NaN`` and ``Infinity``
stay text.
"""

from __future__ import annotations

import json
from typing import Any

from event_log._data_filters import OPERATORS

__all__ = ["parse_where"]


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def parse_where(text: str) -> tuple[str, str, Any]:
    """``"bid_sats>=100"`` as ``("bid_sats", ">=", 100)``; ``ValueError`` without an operator
    or a key."""
    for at, char in enumerate(text):
        if char in "=<>" or text.startswith("!=", at):
            op = text[at : at + 2] if text[at : at + 2] in OPERATORS else char
            break
    else:
        raise ValueError(f"expected KEY OP VALUE with OP one of {' '.join(OPERATORS)}")
    key, raw = text[:at].strip(), text[at + len(op) :].strip()
    if not key:
        raise ValueError("the key before the operator is empty")
    try:
        value: Any = json.loads(raw, parse_constant=_no_constants)
    except ValueError:
        value = raw
    return key, op, value
