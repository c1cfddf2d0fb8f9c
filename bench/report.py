"""Rows, targets, the printed table and the JSON file of a benchmark run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Row", "Target", "at_least", "below", "render", "to_json", "write_json"]

Status = Literal["ok", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets: ``metric`` compared with ``value``."""

    metric: str
    op: Literal[">=", "<"]
    value: float
    label: str

    def met(self, metrics: Mapping[str, Any]) -> bool:
        actual = metrics.get(self.metric)
        if not isinstance(actual, int | float) or math.isnan(actual):
            return False
        return actual >= self.value if self.op == ">=" else actual < self.value


def at_least(metric: str, value: float, label: str) -> Target:
    return Target(metric, ">=", value, label)


def below(metric: str, value: float, label: str) -> Target:
    return Target(metric, "<", value, label)


@dataclass(slots=True)
class Row:
    """One measured line of the report; ``id`` is stable across runs (for comparing JSON)."""

    id: str
    section: Literal["writes", "memory", "reads", "prune", "histogram"]
    label: str
    metrics: dict[str, Any] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()
    status: Status = "ok"
    note: str = ""

    @property
    def passed(self) -> bool | None:
        """True / False against the targets; None without targets or without a measurement."""
        if not self.targets or self.status == "skipped" or not self.metrics:
            return None
        return self.status == "ok" and all(t.met(self.metrics) for t in self.targets)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "label": self.label,
            "status": self.status,
            "passed": self.passed,
            "targets": [
                {"metric": t.metric, "op": t.op, "value": t.value, "label": t.label}
                for t in self.targets
            ],
            "metrics": _finite(self.metrics),
            "note": self.note,
        }


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(rows: Sequence[Row], meta: Mapping[str, Any]) -> str:
    return json.dumps(
        {"meta": _finite(meta), "rows": [r.as_json() for r in rows]}, indent=1, allow_nan=False
    )


def write_json(path: Path, rows: Sequence[Row], meta: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(rows, meta) + "\n")


# -- the table --------------------------------------------------------------------------


def _num(value: Any, kind: str) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "s":
        return f"{value:.2f}"
    # milliseconds and megabytes: three significant figures, no exponent
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _result(row: Row) -> str:
    if row.status == "skipped":
        return "SKIP"
    if row.status == "error":
        return "ERROR"
    passed = row.passed
    return "-" if passed is None else "pass" if passed else "FAIL"


def _target(row: Row) -> str:
    return ", ".join(t.label for t in row.targets) or "-"


Column = tuple[str, Callable[[Row], str]]


def _metric(name: str, kind: str) -> Callable[[Row], str]:
    return lambda row: _num(row.metrics.get(name), kind)


_SECTIONS: dict[str, tuple[str, list[Column]]] = {
    "writes": (
        "Writes",
        [
            ("scenario", lambda r: r.label),
            ("events", _metric("events", "int")),
            ("events/s", _metric("events_per_s", "int")),
            ("vs raw", _metric("ratio", "ratio")),
            ("p50 ms", _metric("p50_ms", "ms")),
            ("p99 ms", _metric("p99_ms", "ms")),
            ("RSS +MB", _metric("rss_growth_mb", "mb")),
            ("target", _target),
            ("result", _result),
        ],
    ),
    "memory": (
        "Memory",
        [
            ("scenario", lambda r: r.label),
            ("emits", _metric("events", "int")),
            ("seconds", _metric("seconds", "s")),
            ("events/s", _metric("events_per_s", "int")),
            ("RSS +MB", _metric("rss_growth_mb", "mb")),
            ("target", _target),
            ("result", _result),
        ],
    ),
    "reads": (
        "Reads",
        [
            ("query", lambda r: r.label),
            ("runs", _metric("runs", "int")),
            ("median ms", _metric("p50_ms", "ms")),
            ("p99 ms", _metric("p99_ms", "ms")),
            ("target", _target),
            ("result", _result),
        ],
    ),
    "prune": (
        "Prune",
        [
            ("scenario", lambda r: r.label),
            ("deleted", _metric("deleted", "int")),
            ("batches", _metric("batches", "int")),
            ("seconds", _metric("seconds", "s")),
            ("max batch ms", _metric("max_batch_ms", "ms")),
            ("log_event p99 ms", _metric("log_event_p99_ms", "ms")),
            ("shrink %", _metric("shrink_pct", "ms")),
            ("max step ms", _metric("max_step_ms", "ms")),
            ("target", _target),
            ("result", _result),
        ],
    ),
    "histogram": (
        "Histogram",
        [
            ("query", lambda r: r.label),
            ("rows", _metric("rows_in_day", "int")),
            ("runs", _metric("runs", "int")),
            ("median ms", _metric("p50_ms", "ms")),
            ("p99 ms", _metric("p99_ms", "ms")),
            ("target", _target),
            ("result", _result),
        ],
    ),
}

_LEFT_ALIGNED = {"scenario", "query", "target", "result"}


def _grid(columns: list[Column], rows: Sequence[Row]) -> list[str]:
    cells = [[header for header, _ in columns]] + [[fn(r) for _, fn in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        parts = [
            v.ljust(w) if header in _LEFT_ALIGNED else v.rjust(w)
            for v, w, (header, _) in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(cells[0]), rule, *(line(c) for c in cells[1:])]


def render(rows: Sequence[Row], heading: Sequence[str] = ()) -> str:
    """The whole report as text: a heading, then a table and its notes per section."""
    out: list[str] = list(heading)
    for section, (title, columns) in _SECTIONS.items():
        chosen = [r for r in rows if r.section == section]
        if not chosen:
            continue
        out += ["", f"{title}", *_grid(columns, chosen)]
        seen: set[str] = set()
        for r in chosen:
            if r.note and r.note not in seen:  # e.g. one skip reason for a whole backend
                seen.add(r.note)
                out.append(f"  * {r.label}: {r.note}")
    passed = [r.passed for r in rows if r.passed is not None]
    errors = sum(r.status == "error" for r in rows)
    out += [
        "",
        f"Targets met: {sum(passed)} of {len(passed)}"
        + (f"; {errors} scenario(s) failed to run" if errors else ""),
    ]
    return "\n".join(out)
