"""Flow settings from SENSOR_* variables: defaults, validation, what goes into the Argo template."""

from __future__ import annotations

import pytest
from flow_settings import SettingError, conda_requested, deploy_environment, load_settings

SECRET = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c2VjcmV0;"


def test_defaults() -> None:
    s = load_settings({})
    assert s.results_container == "sensor-features"
    assert s.fallback_grace_seconds == 600
    assert s.fallback_max_chunks == 100
    assert s.schedule_cron == "0 * * * *"
    assert s.processing == {}
    assert s.storage_connection_string is None and s.storage_account_url is None


def test_values_are_read_and_the_secret_never_shows() -> None:
    s = load_settings(
        {
            "SENSOR_STORAGE": SECRET,
            "SENSOR_RESULTS_CONTAINER": "feats",
            "SENSOR_FALLBACK_GRACE_SECONDS": "0",
            "SENSOR_FALLBACK_MAX_CHUNKS": "3",
            "SENSOR_SCHEDULE_CRON": "*/15  * * * *",
            "SENSOR_NPERSEG": "256",
            "SENSOR_FS": "50",
        }
    )
    assert (s.results_container, s.fallback_grace_seconds, s.fallback_max_chunks) == ("feats", 0.0, 3)
    assert s.schedule_cron == "*/15 * * * *"
    assert s.processing == {"nperseg": 256, "fs": 50.0}
    assert SECRET not in repr(s) and "AccountKey" not in str(s.describe())
    assert s.describe()["storage"] == "connection string (SENSOR_STORAGE)"


def test_account_url_variants() -> None:
    assert load_settings({"SENSOR_STORAGE__serviceUri": "https://a.blob.core.windows.net"}).storage_account_url
    s = load_settings({"SENSOR_STORAGE__blobServiceUri": "https://b.blob.core.windows.net"})
    assert s.storage_account_url == "https://b.blob.core.windows.net"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SENSOR_FALLBACK_MAX_CHUNKS": "0"}, r"SENSOR_FALLBACK_MAX_CHUNKS='0' must be a number >= 1"),
        ({"SENSOR_FALLBACK_MAX_CHUNKS": "ten"}, r"SENSOR_FALLBACK_MAX_CHUNKS='ten' is not a valid int"),
        ({"SENSOR_FALLBACK_GRACE_SECONDS": "-1"}, r"SENSOR_FALLBACK_GRACE_SECONDS='-1' must be"),
        ({"SENSOR_FALLBACK_GRACE_SECONDS": "nan"}, r"SENSOR_FALLBACK_GRACE_SECONDS='nan' must be"),
        ({"SENSOR_SCHEDULE_CRON": "hourly"}, r"SENSOR_SCHEDULE_CRON='hourly' must be a standard 5-field cron"),
        ({"SENSOR_SCHEDULE_CRON": "0 * * * ? *"}, "5-field"),
        ({"SENSOR_RESULTS_CONTAINER": "Bad_Name"}, "SENSOR_RESULTS_CONTAINER: invalid results container name"),
        ({"SENSOR_NPERSEG": "1.5"}, "SENSOR_NPERSEG='1.5' is not a valid int"),
        ({"SENSOR_CARD_ENVELOPE_BINS": "5"}, r"SENSOR_CARD_ENVELOPE_BINS='5' must be a number >= 10"),
        ({"SENSOR_MAX_UNSORTED_ROWS": "-1"}, r"SENSOR_MAX_UNSORTED_ROWS='-1' must be a number >= 0"),
        ({"SENSOR_MAX_UNSORTED_ROWS": "lots"}, r"SENSOR_MAX_UNSORTED_ROWS='lots' is not a valid int"),
    ],
)
def test_bad_values_name_the_variable_and_the_rule(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        load_settings(env)


def test_deploy_environment_carries_settings_but_never_the_connection_string() -> None:
    env = {
        "SENSOR_STORAGE": SECRET,
        "SENSOR_RESULTS_CONTAINER": "feats",
        "SENSOR_STORAGE__blobServiceUri": "https://b.blob.core.windows.net",
        "SENSOR_FALLBACK_MAX_CHUNKS": "",
        "OTHER": "x",
    }
    assert deploy_environment(env) == {
        "SENSOR_RESULTS_CONTAINER": "feats",
        "SENSOR_STORAGE__blobServiceUri": "https://b.blob.core.windows.net",
    }


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["flow.py", "run"], {}, False),
        (["flow.py", "--environment=conda", "argo-workflows", "create"], {}, True),
        (["flow.py", "--environment", "pypi", "run"], {}, True),
        (["flow.py", "--environment=local", "run"], {"METAFLOW_DEFAULT_ENVIRONMENT": "conda"}, False),
        (["flow.py", "step", "start"], {"METAFLOW_DEFAULT_ENVIRONMENT": "conda"}, True),
    ],
)
def test_conda_requested(argv: list[str], env: dict[str, str], expected: bool) -> None:
    assert conda_requested(argv, env) is expected


def test_card_and_unsorted_limits_are_read_and_deployed() -> None:
    settings = load_settings({"SENSOR_CARD_ENVELOPE_BINS": "250", "SENSOR_MAX_UNSORTED_ROWS": "0"})
    assert (settings.card_envelope_bins, settings.max_unsorted_rows) == (250, 0)
    assert load_settings({}).max_unsorted_rows == 2_000_000 and load_settings({}).card_envelope_bins == 1000
    env = deploy_environment({"SENSOR_MAX_UNSORTED_ROWS": "5000", "SENSOR_CARD_ENVELOPE_BINS": "300"})
    assert env["SENSOR_MAX_UNSORTED_ROWS"] == "5000" and env["SENSOR_CARD_ENVELOPE_BINS"] == "300"
