"""The status decision (pure): records first, then the chunk version's workflow."""

from __future__ import annotations

import pytest

from chunk_contract.records import META_CHUNK_ETAG, META_RUN_ID, META_RUN_PATHSPEC, decide_state
from function_app.status import decide_status

CURRENT = {META_CHUNK_ETAG: "0x2", META_RUN_ID: "17", META_RUN_PATHSPEC: "SensorProcessingFlow/17"}
STALE = {META_CHUNK_ETAG: "0x1", META_RUN_ID: "3", META_RUN_PATHSPEC: "SensorProcessingFlow/3"}


def _state(result=None, error=None, reason=None):
    return decide_state("s1/a.csv", '"0x2"', result, error, reason=reason)


def test_processed_names_the_result_and_the_run() -> None:
    got = decide_status(_state(result=CURRENT), "chunk-s1-abc", None).as_dict()
    assert got == {
        "chunk": "s1/a.csv",
        "container": "sensor-data",
        "status": "processed",
        "chunk_etag": "0x2",
        "run_id": "SensorProcessingFlow/17",
        "result_location": "sensor-features/s1/a.csv.features.json",
    }


def test_failed_record_gives_the_reason() -> None:
    got = decide_status(_state(error=CURRENT, reason="line 7: value 'ERR#42'"), None, None)
    assert got.status == "failed" and got.reason == "line 7: value 'ERR#42'"
    assert got.result_location == "sensor-features/s1/a.csv.error.json"


@pytest.mark.parametrize(
    ("workflow", "status", "reason_part"),
    [
        (None, "pending", None),
        ({"metadata": {"name": "w"}, "status": {}}, "submitted", None),
        ({"metadata": {"name": "w"}, "status": {"phase": "Running"}}, "submitted", None),
        ({"metadata": {"name": "w"}, "status": {"phase": "Failed", "message": "OOMKilled"}}, "failed", "OOMKilled"),
        ({"metadata": {"name": "w"}, "status": {"phase": "Error"}}, "failed", "no message"),
        ({"metadata": {"name": "w"}, "status": {"phase": "Succeeded"}}, "failed", "wrote no up-to-date record"),
    ],
)
def test_without_a_current_record_the_workflow_decides(workflow, status, reason_part) -> None:
    got = decide_status(_state(result=STALE), "chunk-s1-abc", workflow)
    assert got.status == status
    if workflow is not None:
        assert got.workflow_name == "chunk-s1-abc" and got.run_id == "argo-chunk-s1-abc"
    if reason_part:
        assert reason_part in (got.reason or "")


def test_local_backend_run_id_annotation_wins() -> None:
    wf = {"metadata": {"annotations": {"sensor-pipeline.io/run-id": "SensorProcessingFlow/5"}}, "status": {}}
    assert decide_status(_state(), "n", wf).run_id == "SensorProcessingFlow/5"


def test_stale_record_with_no_workflow_is_pending() -> None:
    assert decide_status(_state(result=STALE, error=STALE), "n", None).status == "pending"
