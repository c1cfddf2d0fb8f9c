"""Secret redaction: values under secret-looking keys in ``data`` never reach storage.

An audit trail is read by many people and kept for a long time, and a tool
call's arguments are exactly where an API key or a password ends up. So the
logger masks them by default, before validation stores anything (the
``Event`` it returns is masked too).

A key is secret when, lowercased and stripped of everything but letters and
digits, it equals or ends with one of the configured names: ``API-Key``,
``github_token`` and ``db_password`` match; ``max_tokens`` and ``tokenizer``
do not. Matching is by key at every depth of mappings and lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

DEFAULT_SECRET_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "authorization",
        "cookie",
        "privatekey",
        "credentials",
    }
)

_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_CACHE_LIMIT = 4096


def _normalise(key: str) -> str:
    return _NOT_ALNUM.sub("", key.lower())


class Redactor:
    """Masks the values of secret keys; ``apply`` returns ``data`` itself when none match."""

    def __init__(self, keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> None:
        names = {_normalise(key) for key in keys}
        names.discard("")
        if not names:
            raise ValueError("redact needs at least one non-empty key name")
        self.keys = frozenset(names)
        self._seen: dict[str, bool] = {}  # keys repeat a lot: remember the verdicts
        self._clean: set[str] = set()  # str keys of flat dicts found not secret

    @classmethod
    def from_setting(cls, redact: bool | str | Iterable[str]) -> Redactor | None:
        """The redactor a logger's ``redact=`` asks for: the default keys (True), none
        (False), or the given key names."""
        if redact is True:
            return cls()
        if redact is False:
            return None
        return cls([redact] if isinstance(redact, str) else redact)

    def is_secret(self, key: str) -> bool:
        verdict = self._seen.get(key)
        if verdict is None:
            normal = _normalise(key)
            verdict = any(normal.endswith(name) for name in self.keys)
            if len(self._seen) < _CACHE_LIMIT:
                self._seen[key] = verdict
        return verdict

    def apply(self, data: Any) -> Any:
        """``data`` with every secret value masked (a copy of what changed)."""
        if isinstance(data, Mapping):
            changed = False
            out: dict[Any, Any] = {}
            for key, value in data.items():
                if isinstance(key, str) and self.is_secret(key):
                    new = REDACTED
                else:
                    new = self.apply(value)
                changed = changed or new is not value
                out[key] = new
            return out if changed else data
        if isinstance(data, list | tuple):
            items = [self.apply(item) for item in data]
            if any(new is not old for new, old in zip(items, data, strict=True)):
                return items if isinstance(data, list) else tuple(items)
            return data
        return data

    def apply_flat(self, data: dict[str, Any]) -> dict[str, Any]:
        """:meth:`apply` for a flat dict of scalars with str keys (the hot path)."""
        if data.keys() <= self._clean:  # one C-level check when every key is known
            return data
        for key in data:
            if self.is_secret(key):
                return {k: REDACTED if self.is_secret(k) else v for k, v in data.items()}
        if len(self._clean) < _CACHE_LIMIT:
            self._clean.update(data)
        return data
