"""Settings: read lazily, validated once, errors name the setting and never show a secret."""

from __future__ import annotations

import logging
import sys

import azure.functions as func
import pytest

from function_app.settings import SettingsError, blob_trigger_source, load_settings
from function_app.submission import BackendNotAvailable, get_backend
from tests.function_app.conftest import SECRET_TOKEN

GOOD = {
    "SENSOR_STORAGE": "UseDevelopmentStorage=true",
    "ARGO_SERVER_URL": "https://argo:2746",
    "ARGO_TOKEN": SECRET_TOKEN,
}


def test_defaults() -> None:
    s = load_settings(GOOD)
    assert (s.sensor_container, s.argo_namespace, s.argo_workflow_template) == (
        "sensor-data",
        "argo",
        "sensorprocessingflow",
    )
    assert (s.submit_backend, s.blob_trigger_source, s.argo_insecure_skip_verify) == ("argo", "EventGrid", False)
    assert s.argo_ca_bundle is None and s.max_chunks_per_request == 100


@pytest.mark.parametrize("missing", ["SENSOR_STORAGE", "ARGO_SERVER_URL", "ARGO_TOKEN"])
def test_a_missing_required_setting_is_named(missing: str) -> None:
    env = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert info.value.setting == missing and missing in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ARGO_SERVER_URL", "argo:2746"),
        ("ARGO_SERVER_URL", "ftp://argo"),
        ("SUBMIT_BACKEND", "kubernetes"),
        ("BLOB_TRIGGER_SOURCE", "eventgrid"),
        ("ARGO_INSECURE_SKIP_VERIFY", "maybe"),
        ("ARGO_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("ARGO_READ_TIMEOUT", "soon"),
        ("ARGO_READ_TIMEOUT", "0"),
        ("ARGO_MAX_ATTEMPTS", "2.5"),
        ("MAX_CHUNKS_PER_REQUEST", "0"),
    ],
)
def test_a_malformed_setting_is_named(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, key: value})
    assert info.value.setting == key and key in str(info.value)
    assert SECRET_TOKEN not in str(info.value)


def test_identity_based_storage_connection_is_accepted() -> None:
    env = {k: v for k, v in GOOD.items() if k != "SENSOR_STORAGE"}
    env["SENSOR_STORAGE__blobServiceUri"] = "https://acct.blob.core.windows.net"
    assert load_settings(env).sensor_storage == ""


def test_bearer_prefix_from_argo_auth_token_is_accepted() -> None:
    assert load_settings({**GOOD, "ARGO_TOKEN": f"Bearer {SECRET_TOKEN}"}).argo_token == SECRET_TOKEN


def test_secrets_stay_out_of_repr() -> None:
    text = repr(load_settings({**GOOD, "SENSOR_STORAGE": "AccountKey=very-secret-key"}))
    assert SECRET_TOKEN not in text and "very-secret-key" not in text


def test_local_backend_needs_no_argo_settings() -> None:
    s = load_settings({"SENSOR_STORAGE": "x", "SUBMIT_BACKEND": "local"})
    assert s.submit_backend == "local"


def test_local_backend_missing_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail exactly like a missing module, whether or not
    # function_app/local_backend.py exists in this tree.
    monkeypatch.setitem(sys.modules, "function_app.local_backend", None)
    get_backend.cache_clear()
    try:
        with pytest.raises(BackendNotAvailable, match="local_backend"):
            get_backend(load_settings({"SENSOR_STORAGE": "x", "SUBMIT_BACKEND": "local"}))
    finally:
        get_backend.cache_clear()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, func.BlobSource.EVENT_GRID),
        ("", func.BlobSource.EVENT_GRID),
        ("EventGrid", func.BlobSource.EVENT_GRID),
        ("LogsAndContainerScan", func.BlobSource.LOGS_AND_CONTAINER_SCAN),
    ],
)
def test_blob_trigger_source(value: str | None, expected: func.BlobSource) -> None:
    env = {} if value is None else {"BLOB_TRIGGER_SOURCE": value}
    assert blob_trigger_source(env) is expected


def test_invalid_blob_trigger_source_does_not_raise_at_import(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    assert blob_trigger_source({"BLOB_TRIGGER_SOURCE": "polling"}) is func.BlobSource.EVENT_GRID
    assert "BLOB_TRIGGER_SOURCE" in caplog.text and "polling" in caplog.text


def test_identity_based_storage_builds_a_managed_identity_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import ManagedIdentityCredential
    from azure.storage.blob import ExponentialRetry

    from function_app.storage import blob_service_client

    monkeypatch.delenv("SENSOR_STORAGE", raising=False)
    monkeypatch.setenv("SENSOR_STORAGE__blobServiceUri", "https://acct.blob.core.windows.net")
    env = {**GOOD, "SENSOR_STORAGE": "", "SENSOR_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net"}
    client = blob_service_client(load_settings(env))
    assert client.url.startswith("https://acct.blob.core.windows.net")
    assert isinstance(client.credential, ManagedIdentityCredential)
    policy = client._config.retry_policy
    assert isinstance(policy, ExponentialRetry) and policy.total_retries == 3  # not the SDK's 15 s backoff


def test_results_container_is_read_with_the_flow_default_and_validated() -> None:
    base = {"SENSOR_STORAGE": "UseDevelopmentStorage=true", "SUBMIT_BACKEND": "local"}
    assert load_settings(base).sensor_results_container == "sensor-features"
    assert load_settings({**base, "SENSOR_RESULTS_CONTAINER": "my-results"}).sensor_results_container == "my-results"
    with pytest.raises(SettingsError) as info:
        load_settings({**base, "SENSOR_RESULTS_CONTAINER": "Bad_Name"})
    assert info.value.setting == "SENSOR_RESULTS_CONTAINER"
