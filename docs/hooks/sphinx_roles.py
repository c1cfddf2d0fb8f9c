"""A Griffe extension for the API reference: Sphinx roles in docstrings shown as code.

The package's docstrings name other objects with Sphinx roles
(``:class:`~event_log.StorageError```, ``:meth:`list_events```), which Markdown
would show as they are written. This turns each into inline code: the last
part of the name when it starts with ``~`` (as Sphinx shows it), else the whole;
and a paragraph ending in ``::`` before a literal block ends in one colon.
mkdocs.yml loads it for mkdocstrings; it changes no source file.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
# reST's "text::" before an indented literal block; Markdown shows the block as
# code by its indent alone, so one colon is left.
_LITERAL = re.compile(r"(?<=\S)::(?=\n[ \t]*\n)")


def _as_code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    shown = target.rsplit(".", 1)[-1] if short else target
    return f"`{shown}`"


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_as_code, obj.docstring.value)
            obj.docstring.value = _LITERAL.sub(":", text)
