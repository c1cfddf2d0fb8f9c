"""Everything that depends on the database lives in ``event_log.backends``.

Outside that package, no module compares (or even spells) a dialect, driver
or backend name, nor asks an engine, connection or URL for one: it asks its
``Backend`` instead. Adding a database then means adding a backend module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "event_log"
BACKENDS = SRC / "backends"
NAMES = frozenset(
    {
        "sqlite",
        "postgresql",
        "postgres",
        "mysql",
        "mariadb",
        "aiosqlite",
        "asyncpg",
        "asyncmy",
        "psycopg",
        "pysqlite",
    }
)
# Attribute reads that ask which database or driver this is.
ASKS = frozenset({"get_backend_name", "get_driver_name", "get_dialect", "driver"})


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _asks(node: ast.Attribute) -> bool:
    dialect_name = (
        node.attr == "name"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "dialect"
    )
    return node.attr in ASKS or dialect_name


def violations(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docs and node.value.lower() in NAMES:
                found.append(f"{where}:{node.lineno}: names the {node.value!r} backend")
        elif isinstance(node, ast.Attribute) and _asks(node):
            found.append(f"{where}:{node.lineno}: asks for the dialect ({node.attr})")
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if BACKENDS not in p.parents)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_dialect_outside_the_backends(path: Path) -> None:
    assert violations(path.read_text(), str(path.relative_to(SRC))) == []


@pytest.mark.parametrize(
    "source",
    [
        'if dialect == "sqlite": pass',
        'x = name in ("mysql", "mariadb")',
        "x = engine.dialect.name",
        "x = url.get_backend_name()",
        "x = engine.dialect.driver",
        'DRIVERS = {"postgresql": "asyncpg"}',
    ],
)
def test_the_scan_finds_each_kind(source: str) -> None:
    assert violations(source, "example")


def test_the_scan_allows_docstrings_and_other_text() -> None:
    source = '"""Works on SQLite or PostgreSQL: "sqlite"."""\nMESSAGE = "needs PostgreSQL"\n'
    assert violations(source, "example") == []
