"""Secret values in data are masked before storage, by default, at every depth."""

from __future__ import annotations

import pytest

from event_log import EventLogger
from event_log._redact import REDACTED, Redactor


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("DB_Password", True),
        ("api_key", True),
        ("API-Key", True),
        ("github_token", True),
        ("Authorization", True),
        ("client_secret", True),
        ("set-cookie", True),
        ("max_tokens", False),
        ("tokenizer", False),
        ("bid_sats", False),
        ("author", False),
    ],
)
def test_which_keys_are_secret(key: str, secret: bool) -> None:
    assert Redactor().is_secret(key) is secret


def test_nothing_to_mask_returns_the_same_object() -> None:
    data = {"a": [{"b": 1}], "c": "d"}
    assert Redactor().apply(data) is data


async def test_secrets_are_masked_before_storage_at_every_depth(log: EventLogger) -> None:
    event = await log.log_event(
        "tool.called",
        "agent",
        data={
            "tool": "http_get",
            "headers": {"Authorization": "Bearer abc", "Accept": "json"},
            "calls": [{"api_key": "k-123", "n": 1}],
            "password": {"nested": "whole value masked"},
        },
    )
    expected = {
        "tool": "http_get",
        "headers": {"Authorization": REDACTED, "Accept": "json"},
        "calls": [{"api_key": REDACTED, "n": 1}],
        "password": REDACTED,
    }
    assert event.data == expected
    stored = await log.get_event(event.id)
    assert stored is not None
    assert stored.data == expected
    flat = await log.log_event("tool.called", "agent", data={"token": "t", "n": 2})
    assert flat.data == {"token": REDACTED, "n": 2}
    batch = await log.log_events(
        [{"event_type": "tool.called", "source": "a", "data": {"secret": "s"}}]
    )
    emitted = log.emit("tool.called", "a", data={"secret": "s"})
    assert batch[0].data == emitted.data == {"secret": REDACTED}
    await log.flush()
    # The data only: a random event id can hold "abc" too.
    assert "abc" not in str([e.data for e in (await log.list_events()).events])


async def test_redaction_can_be_configured_or_turned_off(backend_url: str) -> None:
    async with EventLogger.open(backend_url, redact=["pin"]) as custom:
        event = await custom.log_event("tool.called", "a", data={"card_pin": "1234", "token": "t"})
        assert event.data == {"card_pin": REDACTED, "token": "t"}
    async with EventLogger.open(backend_url, redact=False) as off:
        event = await off.log_event("tool.called", "a", data={"password": "visible"})
        assert (await off.get_event(event.id)).data == {"password": "visible"}  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="key name"):
        Redactor(["--"])


def test_imported_events_are_masked_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from event_log.cli import app

    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    line = {
        "id": "0190a000-0000-7000-8000-000000000001",
        "event_type": "tool.called",
        "source": "legacy",
        "timestamp": "2026-03-01T12:00:00+00:00",
        "data": {"api_key": "k-123", "tool": "http_get"},
    }
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(line) + "\n")
    runner = CliRunner()
    assert runner.invoke(app, ["--url", url, "import", str(source)]).exit_code == 0
    shown = runner.invoke(app, ["--url", url, "query", "--format", "json"])
    assert json.loads(shown.output)["data"] == {"api_key": REDACTED, "tool": "http_get"}
