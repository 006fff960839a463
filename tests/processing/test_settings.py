"""ProcessingSettings: defaults, validation naming the setting, JSON form."""

from __future__ import annotations

import json
import math

import pytest

from processing.features import ProcessingSettings


def test_defaults_match_the_issue() -> None:
    s = ProcessingSettings()
    assert s.as_dict() == {"fs": 100.0, "nperseg": 1024, "n_bands": 8, "max_lag": 64, "max_gap": 1.0}
    json.dumps(s.as_dict())


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"fs": 0.0}, "fs"),
        ({"fs": -1.0}, "fs"),
        ({"fs": math.nan}, "fs"),
        ({"fs": math.inf}, "fs"),
        ({"nperseg": 7}, "nperseg"),
        ({"nperseg": 1024.0}, "nperseg"),
        ({"nperseg": True}, "nperseg"),
        ({"n_bands": 0}, "n_bands"),
        ({"max_lag": 0}, "max_lag"),
        ({"max_gap": 0.0}, "max_gap"),
        ({"max_gap": -0.5}, "max_gap"),
    ],
)
def test_invalid_settings_name_the_setting(kwargs: dict[str, object], setting: str) -> None:
    with pytest.raises(ValueError, match=rf"^{setting} must be"):
        ProcessingSettings(**kwargs)  # type: ignore[arg-type]


def test_integer_fs_is_recorded_as_float() -> None:
    assert ProcessingSettings(fs=50).as_dict()["fs"] == 50.0
    assert isinstance(ProcessingSettings(fs=50).fs, float)


def test_nperseg_eight_is_the_smallest_allowed() -> None:
    assert ProcessingSettings(nperseg=8).nperseg == 8
