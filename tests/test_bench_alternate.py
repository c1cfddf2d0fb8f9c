"""``python -m bench.alternate`` runs, and refuses what it cannot run."""

from __future__ import annotations

import pytest
from bench import alternate
from bench.alternate import main
from bench.writes import ScenarioError


@pytest.mark.parametrize("option", ["--rounds", "--events"])
def test_counts_below_one_are_refused(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["raw_batches", option, "0"])
    assert exc.value.code == 2
    assert "--rounds and --events must be at least 1" in capsys.readouterr().err


def test_an_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["emit_memory"])  # not a ratio to the raw limit
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_an_unreachable_server_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/postgres"
    assert main(["raw_batches", "--postgres-url", url]) == 1
    assert "PostgreSQL not reachable at" in capsys.readouterr().err


@pytest.mark.postgres
def test_each_round_sets_the_scenarios_beside_the_raw_limit(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["raw_batches", "log_events_batches", "--rounds", "2", "-n", "300"]
    assert main([*args, "--postgres-url", postgres_url]) == 0

    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in rounds] == ["round 1", "round 2"]
    assert all("raw_batches " in line and "log_events_batches " in line for line in rounds)
    table = {line.split()[0]: line for line in out.splitlines()[-3:]}
    assert list(table) == ["raw", "raw_batches", "log_events_batches"]
    assert table["raw"].endswith("1.00x   1.00x  1.00x")


@pytest.mark.postgres
def test_a_failed_scenario_stops_the_run(
    postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(scenario: str, url: str, n: int, *, timeout: float) -> dict[str, float]:
        raise ScenarioError(f"{scenario} failed (exit 1): boom")

    monkeypatch.setattr(alternate, "run_scenario", failing)
    assert main(["raw_batches", "--postgres-url", postgres_url]) == 1
    assert "raw failed (exit 1): boom" in capsys.readouterr().err
