"""The fallback sweep's settings: layout, lookback, byte guard, listing warning (defaults, rules, deploy)."""

from __future__ import annotations

import pytest
from flow_settings import DEPLOY_ENV_VARS, SettingError, deploy_environment, load_settings


def test_defaults_keep_the_full_listing() -> None:
    s = load_settings({})
    assert s.chunk_layout == ""
    assert s.fallback_lookback_hours == 48.0
    assert s.fallback_max_bytes == 8 * 2**30
    assert s.fallback_list_warn == 100_000
    described = s.describe()
    assert described["chunk_layout"] == "(none: full listing)"
    assert described["fallback_max_bytes"] == 8 * 2**30
    assert described["fallback_lookback_hours"] == 48.0 and described["fallback_list_warn"] == 100_000


def test_values_are_read_and_copied_into_the_template() -> None:
    env = {
        "SENSOR_CHUNK_LAYOUT": " {sensor}/{yyyy}/{mm}/{dd}/ ",
        "SENSOR_FALLBACK_LOOKBACK_HOURS": "72.5",
        "SENSOR_FALLBACK_MAX_BYTES": "1048576",
        "SENSOR_FALLBACK_LIST_WARN": "5000",
    }
    s = load_settings(env)
    assert s.chunk_layout == "{sensor}/{yyyy}/{mm}/{dd}/"
    assert (s.fallback_lookback_hours, s.fallback_max_bytes, s.fallback_list_warn) == (72.5, 1048576, 5000)
    assert s.describe()["chunk_layout"] == "{sensor}/{yyyy}/{mm}/{dd}/"
    assert set(env) <= set(DEPLOY_ENV_VARS)
    assert deploy_environment(env) == env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SENSOR_CHUNK_LAYOUT": "{sensor}/{mm}/"}, r"SENSOR_CHUNK_LAYOUT='\{sensor\}/\{mm\}/': must contain \{yyyy\}"),
        (
            {"SENSOR_CHUNK_LAYOUT": "{yyyy}/{mm}/{dd}"},
            r"SENSOR_CHUNK_LAYOUT='\{yyyy\}/\{mm\}/\{dd\}': must end with '/'",
        ),
        ({"SENSOR_CHUNK_LAYOUT": "{dd}/{mm}/{yyyy}/"}, "SENSOR_CHUNK_LAYOUT=.*coarse to fine"),
        ({"SENSOR_FALLBACK_LOOKBACK_HOURS": "0"}, r"SENSOR_FALLBACK_LOOKBACK_HOURS='0' must be a number > 0"),
        ({"SENSOR_FALLBACK_LOOKBACK_HOURS": "-3"}, r"SENSOR_FALLBACK_LOOKBACK_HOURS='-3' must be a number > 0"),
        ({"SENSOR_FALLBACK_LOOKBACK_HOURS": "nan"}, r"SENSOR_FALLBACK_LOOKBACK_HOURS='nan' must be a number > 0"),
        ({"SENSOR_FALLBACK_LOOKBACK_HOURS": "inf"}, r"SENSOR_FALLBACK_LOOKBACK_HOURS='inf' must be at most 8784"),
        (
            {"SENSOR_FALLBACK_LOOKBACK_HOURS": "two days"},
            "SENSOR_FALLBACK_LOOKBACK_HOURS='two days' is not a valid float",
        ),
        ({"SENSOR_FALLBACK_MAX_BYTES": "0"}, r"SENSOR_FALLBACK_MAX_BYTES='0' must be a number >= 1"),
        ({"SENSOR_FALLBACK_MAX_BYTES": "8GiB"}, "SENSOR_FALLBACK_MAX_BYTES='8GiB' is not a valid int"),
        ({"SENSOR_FALLBACK_LIST_WARN": "0"}, r"SENSOR_FALLBACK_LIST_WARN='0' must be a number >= 1"),
    ],
)
def test_bad_values_name_the_variable_and_the_rule(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        load_settings(env)
