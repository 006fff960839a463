"""Settings: read lazily, validated once, errors name the setting and never show a secret."""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Callable

import azure.functions as func
import pytest

from function_app.settings import SettingsError, blob_trigger_source, load_settings
from function_app.submission import BackendNotAvailable, get_backend
from tests.function_app.conftest import SECRET_TOKEN

SECRET_KEY = base64.b64encode(b"very-secret-account-key-0123456789").decode()  # valid base64, as keys are
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
    text = repr(load_settings({**GOOD, "SENSOR_STORAGE": f"AccountName=acct;AccountKey={SECRET_KEY}"}))
    assert SECRET_TOKEN not in text and SECRET_KEY not in text


def test_local_backend_needs_no_argo_settings() -> None:
    s = load_settings({"SENSOR_STORAGE": "UseDevelopmentStorage=true", "SUBMIT_BACKEND": "local"})
    assert s.submit_backend == "local"


def test_local_backend_missing_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail exactly like a missing module, whether or not
    # localdev/local_backend.py exists in this tree.
    monkeypatch.setitem(sys.modules, "localdev.local_backend", None)
    get_backend.cache_clear()
    try:
        with pytest.raises(BackendNotAvailable, match="local_backend"):
            get_backend(load_settings({"SENSOR_STORAGE": "UseDevelopmentStorage=true", "SUBMIT_BACKEND": "local"}))
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


# --------------------------------------------------------------------------- malformed values, never echoed


def assert_named_without(info: pytest.ExceptionInfo[SettingsError], setting: str, *secrets: str) -> None:
    """The error names ``setting`` and holds none of ``secrets`` (nor a piece of them) anywhere."""
    error = info.value
    assert error.setting == setting and setting in str(error)
    texts = [str(error), repr(error), *map(str, error.args)]
    # What a traceback would print besides: the cause, or the context unless suppressed.
    chained = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if chained is not None:
        texts += [str(chained), repr(chained)]
    for secret in secrets:
        # The whole value, and every value inside it: what follows '=' in each ';'- or space-separated part.
        pieces = {secret, *(p.partition("=")[2] if "=" in p else p for p in secret.replace(";", " ").split())}
        for piece in (p for p in pieces if len(p) >= 8):
            for text in texts:
                assert piece not in text, f"{piece!r} leaked into {text!r}"


@pytest.mark.parametrize(
    "token",
    [
        f"{SECRET_TOKEN}\nsecond-line-of-the-token",  # two lines: the header would end after the first
        f"{SECRET_TOKEN}\r\nX-Injected: yes",
        f"Bearer {SECRET_TOKEN}\nsecond-line-of-the-token",
        f"{SECRET_TOKEN}\u20ac-not-latin-1",  # requests cannot encode it into a header at all
        f"{SECRET_TOKEN}\u00e9-latin-1-but-not-ascii",
        f"{SECRET_TOKEN} with-a-space",
        f"{SECRET_TOKEN}\x00nul",
        f"{SECRET_TOKEN}\ttab",
    ],
    ids=["newline", "crlf-injection", "bearer-newline", "non-latin-1", "non-ascii", "space", "nul", "tab"],
)
def test_a_token_unfit_for_a_header_is_a_settings_error_without_the_token(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, "ARGO_TOKEN": token})
    assert_named_without(info, "ARGO_TOKEN", token, SECRET_TOKEN)
    assert SECRET_TOKEN not in caplog.text and "second-line" not in caplog.text


def test_a_token_with_only_surrounding_whitespace_is_accepted() -> None:
    assert load_settings({**GOOD, "ARGO_TOKEN": f"  Bearer {SECRET_TOKEN}\n"}).argo_token == SECRET_TOKEN
    assert load_settings({**GOOD, "ARGO_TOKEN": "v2:eyJhbGciOi.JSUzI1-NiJ9_~+/="}).argo_token.startswith("v2:")


CONNECTION = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET_KEY};EndpointSuffix=core.windows.net"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (SECRET_KEY, "not key=value"),  # the key pasted alone
        ("x", "not key=value"),
        (f"AccountKey={SECRET_KEY}", "no AccountName"),
        (f"DefaultEndpointsProtocol=https;AccountKey={SECRET_KEY};EndpointSuffix=core.windows.net", "no AccountName"),
        (f"AccountName=;AccountKey={SECRET_KEY}", "no AccountName"),
        (f"AccountName=Not_An_Account;AccountKey={SECRET_KEY}", "AccountName"),
        ("AccountName=acct", "no credential"),
        ("AccountName=acct;AccountKey=not base64! very-secret-key", "not base64"),
        ("AccountName=acct;AccountKey=", "not base64"),
        (f"AccountName=acct;AccountKey={SECRET_KEY};AccountName=other", "AccountName twice"),
        (f"AccountName=acct;accountkey={SECRET_KEY};AccountKey={SECRET_KEY}", "AccountKey twice"),
        (f"AccountName=acct;AccountKey={SECRET_KEY};;EndpointSuffix=core.windows.net", "part 3"),
        (f"AccountName=acct;AccountKey={SECRET_KEY}\nvery-secret-line", "not base64"),
        (f"Account Name=acct;AccountKey={SECRET_KEY}", "not key=value"),
        (f"DefaultEndpointsProtocol=ftp;AccountName=acct;AccountKey={SECRET_KEY}", "DefaultEndpointsProtocol"),
        (f"AccountName=acct;AccountKey={SECRET_KEY};BlobEndpoint=acct.blob.core.windows.net", "BlobEndpoint"),
        (f"AccountName=acct;AccountKey={SECRET_KEY};BlobEndpoint=https://h:99999/", "BlobEndpoint"),
        ("UseDevelopmentStorage=yes", "UseDevelopmentStorage"),
    ],
)
def test_a_malformed_connection_string_is_named_without_its_value(
    value: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, "SENSOR_STORAGE": value})
    assert words in str(info.value)
    assert_named_without(info, "SENSOR_STORAGE", value, SECRET_KEY, "very-secret")
    assert SECRET_KEY not in caplog.text and "very-secret" not in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        "UseDevelopmentStorage=true",
        "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1",
        CONNECTION,
        CONNECTION + ";",
        CONNECTION.replace("AccountName", "accountname"),  # keys are case-insensitive, like the SDKs'
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;",
        "AccountName=acct;SharedAccessSignature=sv=2024-01-01&ss=b&sig=abc%3D",  # '=' inside the value
        "BlobEndpoint=https://acct.blob.core.windows.net;AccountName=acct;SharedAccessSignature=sv=1&sig=2",
    ],
)
def test_well_formed_connection_strings_are_accepted(value: str) -> None:
    from azure.storage.blob import BlobServiceClient

    assert load_settings({**GOOD, "SENSOR_STORAGE": value}).sensor_storage == value
    BlobServiceClient.from_connection_string(value)  # and the SDK agrees


@pytest.mark.parametrize(
    ("env", "setting", "words"),
    [
        ({"SENSOR_CONTAINER": "Sensor_Data"}, "SENSOR_CONTAINER", "container name"),
        ({"SENSOR_CONTAINER": "ab"}, "SENSOR_CONTAINER", "container name"),
        ({"SENSOR_CONTAINER": "a--b"}, "SENSOR_CONTAINER", "container name"),
        ({"SENSOR_CONTAINER": "data/../secrets"}, "SENSOR_CONTAINER", "container name"),
        ({"SENSOR_CONTAINER": "sensor-features"}, "SENSOR_CONTAINER", "SENSOR_RESULTS_CONTAINER"),
        ({"SENSOR_CONTAINER": "same", "SENSOR_RESULTS_CONTAINER": "same"}, "SENSOR_CONTAINER", "must differ"),
        ({"ARGO_NAMESPACE": "argo/../kube-system"}, "ARGO_NAMESPACE", "DNS-1123 label"),
        ({"ARGO_NAMESPACE": "Argo"}, "ARGO_NAMESPACE", "DNS-1123 label"),
        ({"ARGO_WORKFLOW_TEMPLATE": "flow?x=1"}, "ARGO_WORKFLOW_TEMPLATE", "DNS-1123 subdomain"),
        ({"ARGO_WORKFLOW_TEMPLATE": "proj..flow"}, "ARGO_WORKFLOW_TEMPLATE", "DNS-1123 subdomain"),
        ({"ARGO_SERVER_URL": "https://argo:99999"}, "ARGO_SERVER_URL", "port"),
        ({"ARGO_SERVER_URL": "https://argo:2746?x=1"}, "ARGO_SERVER_URL", "query"),
        ({"ARGO_SERVER_URL": "https://ar\ngo:2746"}, "ARGO_SERVER_URL", "whitespace"),
    ],
)
def test_malformed_names_are_settings_errors(env: dict[str, str], setting: str, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, **env})
    assert info.value.setting == setting and words in str(info.value)


def test_a_server_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, "ARGO_SERVER_URL": "https://admin:hunter2-password@argo:2746"})
    assert_named_without(info, "ARGO_SERVER_URL", "hunter2-password")


def test_valid_names_are_accepted() -> None:
    s = load_settings(
        {
            **GOOD,
            "SENSOR_CONTAINER": "chunks-2026",
            "SENSOR_RESULTS_CONTAINER": "results",
            "ARGO_NAMESPACE": "jobs-1",
            "ARGO_WORKFLOW_TEMPLATE": "proj.branch.sensorprocessingflow",
        }
    )
    assert (s.sensor_container, s.sensor_results_container) == ("chunks-2026", "results")
    assert (s.argo_namespace, s.argo_workflow_template) == ("jobs-1", "proj.branch.sensorprocessingflow")


def test_a_bad_token_reaches_the_http_caller_as_a_500_naming_it_without_the_token(
    app_env: Callable[..., None], upload: Callable[..., str], all_logs: Callable[[], str]
) -> None:
    from function_app.http_trigger import handle_trigger_request

    upload("s/a.csv")  # so that, without the check, the request would go as far as building the header
    app_env(ARGO_TOKEN=f"{SECRET_TOKEN}\nsecond-line-of-the-token")
    req = func.HttpRequest("POST", "http://localhost/api/trigger", body=b'{"chunks": ["s/a.csv"]}')
    resp = handle_trigger_request(req)
    body = resp.get_body().decode()
    assert resp.status_code == 500 and '"field": "ARGO_TOKEN"' in body
    assert SECRET_TOKEN not in body + all_logs() and "second-line" not in body + all_logs()
