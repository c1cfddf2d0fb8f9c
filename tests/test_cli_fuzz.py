"""Bad input to the command line: arguments, times and import files are fuzzed;
every run ends with exit code 0, 1 or 2 and a message, never a traceback."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from event_log.cli import app
from event_log.cli._io import BadLine, parse_line
from event_log.cli._times import parse_duration, parse_time

pytestmark = pytest.mark.sqlite

TEXT_EXAMPLES = 300
CLI_EXAMPLES = 40
IMPORT_EXAMPLES = 15

sql_like = st.sampled_from(["'; DROP TABLE event_log; --", "%", "_", "task.%", "\\", "*", ""])
texts = st.text(max_size=40) | sql_like
times = st.sampled_from(["15m", "2h", "7d", "2026-03-01", "2026-03-01T12:00:00+02:00"]) | texts


@settings(max_examples=TEXT_EXAMPLES, deadline=None)
@given(texts)
def test_durations_parse_or_raise_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration(text) >= timedelta(0)


@settings(max_examples=TEXT_EXAMPLES, deadline=None)
@given(times)
def test_times_parse_to_aware_utc_or_raise_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_time(text).utcoffset() == timedelta(0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
line_objects = st.dictionaries(
    st.sampled_from(["id", "event_type", "source", "task_id", "timestamp", "data", "extra"]),
    json_values,
)


@settings(max_examples=TEXT_EXAMPLES, deadline=None)
@given(st.binary(max_size=200) | line_objects.map(lambda d: json.dumps(d).encode()))
def test_import_lines_parse_or_raise_bad_line(raw: bytes) -> None:
    # Whether the object is a valid event is the library's business (test_importing).
    try:
        item = parse_line(raw)
    except BadLine as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "\n" not in message
        return
    assert isinstance(item, dict)
    assert item == json.loads(raw)


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cli-fuzz') / 'events.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["--url", url, "db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["--url", url, "log", "task.created", "--source", "c"]).exit_code == 0
    return url


def assert_clean_exit(result: Result) -> None:
    assert result.exit_code in (0, 1, 2), result
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


@settings(
    max_examples=CLI_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(["--type", "--source", "--task-id", "--agent-id", "--since", "--until"]),
    value=times,
    limit=st.integers(-5, 2_000).map(str) | texts,
    fmt=st.sampled_from(["json", "csv", "table", "yaml"]),
)
def test_query_arguments_never_crash(
    db_url: str, kind: str, value: str, limit: str, fmt: str
) -> None:
    args = ["--url", db_url, "query", kind, value, "--limit", limit, "--format", fmt]
    assert_clean_exit(CliRunner().invoke(app, args))


@settings(
    max_examples=CLI_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    event_type=texts | st.sampled_from(["task.created", "payment.settled"]),
    source=texts,
    data=texts | st.sampled_from(['{"a": 1}', "[1]", '{"password": "x"}', "{", "null"]),
)
def test_log_arguments_never_crash(db_url: str, event_type: str, source: str, data: str) -> None:
    args = ["--url", db_url, "log", event_type, "--source", source, "--data", data]
    assert_clean_exit(CliRunner().invoke(app, args))


@settings(
    max_examples=IMPORT_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    good=st.integers(0, 20),
    garbage=st.lists(st.binary(max_size=80) | line_objects.map(json.dumps).map(str.encode)),
)
def test_import_files_keep_good_lines_and_report_bad_ones(
    tmp_path_factory: pytest.TempPathFactory, good: int, garbage: list[bytes]
) -> None:
    folder = tmp_path_factory.mktemp("import")
    url = f"sqlite+aiosqlite:///{folder / 'events.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["--url", url, "db", "upgrade"]).exit_code == 0
    when = datetime(2026, 3, 1, tzinfo=UTC)
    lines = [
        json.dumps(
            {
                "id": str(uuid.uuid4()),
                "event_type": "task.created",
                "source": "import",
                "timestamp": (when + timedelta(seconds=i)).isoformat(),
                "data": {"i": i},
            }
        ).encode()
        for i in range(good)
    ]
    mixed = [line.replace(b"\n", b" ") for line in garbage] + lines
    # A file that starts with gzip's magic bytes is read as gzip (and refused, in
    # one line, when it is not): its lines are not lines.
    assume(not b"\n".join(mixed).startswith(b"\x1f\x8b"))
    path = Path(folder / "in.jsonl")
    path.write_bytes(b"\n".join(mixed) + b"\n")
    result = runner.invoke(app, ["--url", url, "import", str(path)])
    assert_clean_exit(result)
    counted = runner.invoke(
        app, ["--url", url, "query", "--source", "import", "--all", "--format", "json"]
    )
    assert counted.exit_code == 0
    imported = [json.loads(line) for line in counted.output.splitlines() if line.strip()]
    assert len(imported) >= good  # every good line is kept (garbage may hold valid events too)
