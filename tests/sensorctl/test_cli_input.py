"""Command-line input errors name the option and the rule, with exit code 2."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sensorctl.cli import UsageError, main, parse_time


def test_parse_time_forms() -> None:
    assert parse_time("--since", "2026-11-22") == datetime(2026, 11, 22, tzinfo=UTC)
    assert parse_time("--since", "2026-11-22T08:00:00Z") == datetime(2026, 11, 22, 8, tzinfo=UTC)
    plus2 = parse_time("--until", "2026-11-22T08:00+02:00")
    assert plus2.utcoffset() == timedelta(hours=2) and plus2.tzinfo == timezone(timedelta(hours=2))
    with pytest.raises(UsageError, match=r"--until 'yesterday' is not an ISO 8601"):
        parse_time("--until", "yesterday")


def test_missing_settings_exit_2_naming_the_setting(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("SENSOR_STORAGE", raising=False)
    monkeypatch.setenv("SUBMIT_BACKEND", "local")
    assert main(["status", "s1/a.csv"], out=io.StringIO()) == 2
    assert "SENSOR_STORAGE is not set" in capsys.readouterr().err


def test_bad_batch_size_and_bad_time_exit_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SENSOR_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SUBMIT_BACKEND", "local")
    assert main(["backfill", "--batch-size", "0"], out=io.StringIO()) == 2
    assert "--batch-size 0 must be between 1 and 100" in capsys.readouterr().err
    assert main(["backfill", "--since", "soon"], out=io.StringIO()) == 2
    assert "--since 'soon' is not an ISO 8601" in capsys.readouterr().err


def test_invalid_chunk_name_exit_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SENSOR_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SUBMIT_BACKEND", "local")
    assert main(["status", "raw/$HOME/x.csv"], out=io.StringIO()) == 2
    assert "character '$' is not allowed" in capsys.readouterr().err
