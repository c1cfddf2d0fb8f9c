"""The package's layers: a subpackage uses the rest of event_log through its public names only.

Modules directly in ``event_log/`` (the core) may import each other's private
modules and the ``backends`` package. A subpackage (``event_log.cli``,
``event_log.web``, ...) may import its own private modules, and anything
public, but no private module of another package (``event_log._x``,
``event_log.other._x``) and no ``from event_log import _x``. That keeps the
command line and the web app thin layers that a core refactoring cannot break.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "event_log"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    """The package a module file belongs to (a package's ``__init__`` belongs to itself)."""
    return ".".join(path.parent.relative_to(SRC).parts)


def _resolve(package: str, level: int, module: str | None) -> str:
    """The absolute name of a relative import ``from {'.' * level}{module} import ...``."""
    if level == 0:
        return module or ""
    base = package.split(".")
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, module] if module else base)


def _is_private_module(name: str) -> bool:
    """``event_log._x...`` or ``event_log.sub._x...``: a private module of some package."""
    parts = name.split(".")
    return parts[0] == "event_log" and any(part.startswith("_") for part in parts[1:])


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every module ``path`` imports, including
    ``from package import _module``."""
    package = _package_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.level, node.module)
            yield node.lineno, base
            if _is_private_module(base):
                continue  # one error per statement is enough
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    # ``from event_log import _x``: a private module (or name) of base.
                    yield node.lineno, f"{base}.{alias.name}"


def layering_errors(path: Path) -> list[str]:
    """What ``path`` imports against the rule above (nothing for a core module)."""
    package = _package_of(path)
    if package == "event_log" or not package.startswith("event_log."):
        return []
    # The subpackage at the top of event_log (event_log.cli for event_log.cli.x.y).
    top = ".".join(package.split(".")[:2])
    if top == "event_log.backends":
        return []  # the core's own implementation: part of the core
    errors = []
    for line, name in imported_modules(path):
        if not _is_private_module(name):
            continue
        if name == top or name.startswith(top + "."):
            continue  # its own private modules
        errors.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    return errors


def _files(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def test_the_command_line_uses_only_public_names() -> None:
    files = _files("cli")
    assert files
    errors = [error for path in files for error in layering_errors(path)]
    assert not errors, "\n".join(errors)


def test_the_web_app_uses_only_public_names() -> None:
    files = _files("web")
    assert files
    errors = [error for path in files for error in layering_errors(path)]
    assert not errors, "\n".join(errors)


def test_every_other_subpackage_uses_only_public_names() -> None:
    others = [
        path
        for path in PACKAGE.iterdir()
        if path.is_dir() and (path / "__init__.py").is_file() and path.name not in ("cli", "web")
    ]
    errors = [e for sub in others for path in _files(sub.name) for e in layering_errors(path)]
    assert not errors, "\n".join(errors)


# -- the rule itself, on made-up modules ------------------------------------------------


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "src" / "event_log"
    (root / "cli").mkdir(parents=True)
    (root / "backends").mkdir()
    for init in (root, root / "cli", root / "backends"):
        (init / "__init__.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    return root


def _errors_of(path: Path, source: str) -> list[str]:
    path.write_text(source)
    return layering_errors(path)


@pytest.mark.parametrize(
    "source",
    [
        "from event_log._models import Row",
        "import event_log._engine",
        "import event_log._engine as engine",
        "from event_log import _models",
        "from .. import _models",
        "from .._models import Row",
        "from ..backends._sink import Sink",
        "from event_log.web._query import parse",
        "from ..web import _query",
        "def f():\n    from event_log._models import Row\n",
    ],
)
def test_a_subpackage_importing_a_private_module_elsewhere_is_an_error(
    fake_package: Path, source: str
) -> None:
    errors = _errors_of(fake_package / "cli" / "_app.py", source)
    assert len(errors) == 1, errors
    assert "cli/_app.py:" in errors[0]


@pytest.mark.parametrize(
    "source",
    [
        "from event_log import EventLogger, admin",
        "from . import _output",
        "from ._output import print_event",
        "from event_log.cli._output import print_event",
        "import event_log.cli._times",
        "from event_log.admin import head_revision",
        "import click",
        "from __future__ import annotations",
    ],
)
def test_public_names_and_its_own_private_modules_are_fine(fake_package: Path, source: str) -> None:
    assert _errors_of(fake_package / "cli" / "_app.py", source) == []


def test_core_modules_may_import_private_modules(fake_package: Path) -> None:
    source = "from ._models import Row\nfrom .backends._sink import Sink\n"
    assert _errors_of(fake_package / "_logger.py", source) == []
    assert _errors_of(fake_package / "backends" / "_x.py", "from .._models import Row") == []
