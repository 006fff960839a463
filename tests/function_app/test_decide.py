"""The pure decision: names, labels, the submit body, rejections. No I/O."""

from __future__ import annotations

import json
import re

import pytest

from chunk_contract.naming import is_dns1123_label, normalize_etag, workflow_name
from function_app.settings import Settings, load_settings
from function_app.submission import Rejection, Submission, check_chunks, decide

SETTINGS = load_settings(
    {"SENSOR_STORAGE": "UseDevelopmentStorage=true", "ARGO_SERVER_URL": "https://argo:2746", "ARGO_TOKEN": "t"}
)
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def ok(**kwargs: object) -> Submission:
    args: dict = {
        "trigger": "blob",
        "container": "sensor-data",
        "chunks": ["sensor-7/2026/11/22/chunk-0001.csv"],
        "etags": ['"0x8DC0001"'],
        "force": False,
        "settings": SETTINGS,
        "request_id": "r1",
        **kwargs,
    }
    decision = decide(**args)
    assert isinstance(decision, Submission), decision
    return decision


def rejected(**kwargs: object) -> Rejection:
    args: dict = {
        "trigger": "http",
        "container": "sensor-data",
        "chunks": ["sensor-7/a.csv"],
        "etags": ["0x1"],
        "force": False,
        "settings": SETTINGS,
        "request_id": "r1",
        **kwargs,
    }
    decision = decide(**args)
    assert isinstance(decision, Rejection), decision
    return decision


def test_body_follows_the_argo_contract_and_metaflow_encoding() -> None:
    s = ok()
    assert s.body["resourceKind"] == "WorkflowTemplate"
    assert s.body["resourceName"] == s.template == "sensorprocessingflow"
    assert s.body["namespace"] == "argo"
    opts = s.body["submitOptions"]
    assert opts["name"] == s.workflow_name
    assert opts["parameters"] == [
        "chunks=" + json.dumps(json.dumps(["sensor-7/2026/11/22/chunk-0001.csv"])),
        "container=" + json.dumps("sensor-data"),
        "force=" + json.dumps(False),  # a bool is a bare JSON literal, as Metaflow's own trigger sends it
    ]
    assert json.loads(json.loads(s.parameters["chunks"])) == list(s.chunks)
    assert json.loads(s.parameters["container"]) == "sensor-data"
    assert s.request_id == "r1"
    assert set(opts) == {"name", "parameters", "labels", "annotations"}


def test_template_and_namespace_come_from_settings() -> None:
    settings = load_settings(
        {
            "SENSOR_STORAGE": "UseDevelopmentStorage=true",
            "ARGO_SERVER_URL": "https://argo:2746",
            "ARGO_TOKEN": "t",
            "ARGO_WORKFLOW_TEMPLATE": "proj.branch.flow",
            "ARGO_NAMESPACE": "jobs",
        }
    )
    s = ok(settings=settings)
    assert s.body["resourceName"] == "proj.branch.flow" and s.body["namespace"] == "jobs"


def test_same_chunk_version_same_name_from_every_path() -> None:
    names = {
        ok(trigger="blob", etags=['"0x8DC0001"'], request_id="a").workflow_name,
        ok(trigger="http", etags=["0x8DC0001"], request_id="b").workflow_name,  # Event Grid style, no quotes
        ok(trigger="backfill", etags=['W/"0x8DC0001"'], request_id="c").workflow_name,
    }
    assert len(names) == 1


def test_new_version_container_or_chunk_gives_a_new_name() -> None:
    base = ok().workflow_name
    assert ok(etags=['"0x8DC0002"']).workflow_name != base
    assert ok(container="other-data").workflow_name != base
    assert ok(chunks=["sensor-7/2026/11/22/chunk-0002.csv"]).workflow_name != base


def test_force_gives_a_new_name_per_request() -> None:
    base = ok().workflow_name
    forced_a = ok(force=True, request_id="a")
    forced_b = ok(force=True, request_id="b")
    assert len({base, forced_a.workflow_name, forced_b.workflow_name}) == 3
    assert forced_a.workflow_name.startswith("rerun-")
    assert "sensor-pipeline.io/forced=true" in forced_a.body["submitOptions"]["labels"]


def test_multi_chunk_name_is_order_independent() -> None:
    a = ok(chunks=["s1/a.csv", "s2/b.csv"], etags=["1", "2"])
    b = ok(chunks=["s2/b.csv", "s1/a.csv"], etags=["2", "1"])
    assert a.workflow_name == b.workflow_name and a.workflow_name.startswith("batch-2-")
    assert a.chunks == b.chunks == ("s1/a.csv", "s2/b.csv")
    assert ok(chunks=["s1/a.csv", "s2/b.csv"], etags=["1", "3"]).workflow_name != a.workflow_name


@pytest.mark.parametrize(
    "chunk",
    [
        "sensor-7/a.csv",
        "A" * 200 + "/x.csv",
        "UPPER_case.with.dots=and_equals/file",
        "-._=/x",
        "9" * 1010,
        "a/b/c/d/e/f/g/h/i/j/k.csv",
    ],
)
def test_names_are_dns1123_and_at_most_63_chars(chunk: str) -> None:
    s = ok(chunks=[chunk])
    assert is_dns1123_label(s.workflow_name) and len(s.workflow_name) <= 63
    assert is_dns1123_label(ok(chunks=[chunk], force=True).workflow_name)


def test_labels_are_valid_and_hold_no_blob_path() -> None:
    chunk = "sensor-7/2026/11/22/chunk-0001.csv"
    labels_text = ok(chunks=[chunk]).body["submitOptions"]["labels"]
    labels = dict(item.split("=", 1) for item in labels_text.split(","))
    assert set(labels) == {
        "sensor-pipeline.io/chunks-key",
        "sensor-pipeline.io/blob-key",
        "sensor-pipeline.io/trigger",
        "sensor-pipeline.io/forced",
    }
    for value in labels.values():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    assert chunk not in labels_text and "sensor-7" not in labels_text
    # The blob key is shared by every version of a blob; the chunks key is not.
    other = dict(i.split("=", 1) for i in ok(chunks=[chunk], etags=["2"]).body["submitOptions"]["labels"].split(","))
    assert other["sensor-pipeline.io/blob-key"] == labels["sensor-pipeline.io/blob-key"]
    assert other["sensor-pipeline.io/chunks-key"] != labels["sensor-pipeline.io/chunks-key"]


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"chunks": []}, "chunks", "at least one"),
        ({"chunks": "sensor-7/a.csv"}, "chunks", "list"),
        ({"chunks": ["raw/$HOME/x.csv"], "etags": ["1"]}, "chunks[0]", "'$'"),
        ({"chunks": ["a/`id`.csv"], "etags": ["1"]}, "chunks[0]", "'`'"),
        ({"chunks": ["a/b c.csv"], "etags": ["1"]}, "chunks[0]", "' '"),
        ({"chunks": ["a/../b.csv"], "etags": ["1"]}, "chunks[0]", "'..'"),
        ({"chunks": ["/a.csv"], "etags": ["1"]}, "chunks[0]", "start with '/'"),
        ({"chunks": ["ok.csv", 7], "etags": ["1", "2"]}, "chunks[1]", "string"),
        ({"chunks": ["a.csv", "a.csv"], "etags": ["1", "1"]}, "chunks[1]", "twice"),
        ({"chunks": [f"c{i}" for i in range(101)], "etags": ["1"] * 101}, "chunks", "maximum is 100"),
        ({"container": "Bad_Container"}, "container", "container name"),
        ({"etags": []}, "etags", "0 ETags for 1"),
        ({"etags": ['""']}, "etags", "empty ETag"),
        ({"trigger": "Blob Trigger"}, "trigger", "label"),
        ({"request_id": "a,b=c"}, "request_id", "annotation"),
    ],
)
def test_rejections_name_the_input_and_the_rule(kwargs: dict, field: str, words: str) -> None:
    decision = rejected(**kwargs)
    assert decision.field == field
    assert words in decision.reason


def test_check_chunks_uses_the_configured_maximum() -> None:
    assert check_chunks(["a", "b"], 2) == ("a", "b")
    decision = check_chunks(["a", "b", "c"], 2)
    assert isinstance(decision, Rejection) and "maximum is 2" in decision.reason


def test_normalize_etag() -> None:
    assert normalize_etag('"0x8D"') == normalize_etag("0x8D") == normalize_etag('W/"0x8D"') == "0x8D"
    with pytest.raises(ValueError):
        normalize_etag('  ""  ')


def test_workflow_name_needs_a_chunk() -> None:
    with pytest.raises(ValueError):
        workflow_name("sensor-data", [])


def test_settings_type_is_the_contract() -> None:
    assert isinstance(SETTINGS, Settings)
