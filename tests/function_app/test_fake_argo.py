"""The fake Argo Server itself: it must refuse what Argo refuses, or the other tests prove nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.fakes import FakeArgoServer
from tests.function_app.conftest import SECRET_TOKEN

AUTH = {"Authorization": f"Bearer {SECRET_TOKEN}"}


def submit(fake: FakeArgoServer, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{fake.url}/api/v1/workflows/argo/submit",
        data=json.dumps(body),
        headers=AUTH if headers is None else headers,
        timeout=5,
    )


def body(**opts: Any) -> dict[str, Any]:
    return {
        "resourceKind": "WorkflowTemplate",
        "resourceName": "sensorprocessingflow",
        "submitOptions": {"parameters": ['chunks="[]"'], **opts},
    }


def test_token_is_required_except_for_version(fake_argo: FakeArgoServer) -> None:
    assert submit(fake_argo, body(), headers={}).status_code == 401
    assert submit(fake_argo, body(), headers={"Authorization": SECRET_TOKEN}).json()["code"] == 16  # no "Bearer"
    assert requests.get(f"{fake_argo.url}/api/v1/version", timeout=5).status_code == 200
    assert all(not r.authorized for r in fake_argo.requests[:2])


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({**body(), "resourceKind": "workflowTemplate"}, 400, 3),
        ({**body(), "resourceName": "missing"}, 404, 5),
        (body(parameters=["novalue"]), 500, 13),
        (body(parameters="chunks=[]"), 400, 3),
        (body(name="Upper_Case"), 400, 3),
        (body(name="a" * 64), 400, 3),
        (body(labels="k=has/slash"), 400, 3),
        (body(labels="k=" + "v" * 64), 400, 3),
        (body(priority="high"), 400, 3),
        ({**body(), "namespace": "other"}, 400, 3),
        ([1, 2], 400, 3),
    ],
)
def test_refuses_what_argo_refuses(fake_argo: FakeArgoServer, payload: Any, status: int, code: int) -> None:
    response = submit(fake_argo, payload)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert fake_argo.created == []


def test_unknown_keys_are_silently_ignored_like_argo(fake_argo: FakeArgoServer) -> None:
    response = submit(fake_argo, {**body(name="wf-1"), "submitOpts": {"parameters": ["x=1"]}})
    assert response.status_code == 200
    params = response.json()["spec"]["arguments"]["parameters"]
    assert {"name": "x", "value": "1"} not in params


def test_create_conflict_get_list_and_hooks(fake_argo: FakeArgoServer) -> None:
    seen: list[dict[str, Any]] = []
    fake_argo.on_created = seen.append
    first = submit(fake_argo, body(name="wf-1", labels="team=a,kind=x", parameters=["chunks=a=b"]))
    assert first.status_code == 200 and first.json()["metadata"]["name"] == "wf-1"
    params = {p["name"]: p["value"] for p in first.json()["spec"]["arguments"]["parameters"]}
    assert params["chunks"] == "a=b"  # split at the first "=" only
    conflict = submit(fake_argo, body(name="wf-1"))
    assert conflict.status_code == 409 and conflict.json() == {
        "code": 6,
        "message": 'workflows.argoproj.io "wf-1" already exists',
    }
    generated = submit(fake_argo, body(generateName="gen-"))
    assert generated.json()["metadata"]["name"].startswith("gen-")
    assert submit(fake_argo, body(name="dry", serverDryRun=True)).status_code == 200
    assert [w["metadata"]["name"] for w in seen] == ["wf-1", generated.json()["metadata"]["name"]]

    get = requests.get(f"{fake_argo.url}/api/v1/workflows/argo/wf-1", headers=AUTH, timeout=5)
    assert get.json()["metadata"]["labels"]["team"] == "a"
    assert requests.get(f"{fake_argo.url}/api/v1/workflows/argo/dry", headers=AUTH, timeout=5).status_code == 404
    listed = requests.get(
        f"{fake_argo.url}/api/v1/workflows/argo",
        params={"listOptions.labelSelector": "team=a"},
        headers=AUTH,
        timeout=5,
    ).json()
    assert [w["metadata"]["name"] for w in listed["items"]] == ["wf-1"]
    empty = requests.get(
        f"{fake_argo.url}/api/v1/workflows/argo",
        params={"listOptions.labelSelector": "team=b"},
        headers=AUTH,
        timeout=5,
    ).json()
    assert empty["items"] is None  # Argo answers null, not []

    fake_argo.set_phase("wf-1", "Succeeded")
    assert fake_argo.workflow("wf-1")["status"]["phase"] == "Succeeded"  # type: ignore[index]


def test_hook_errors_are_kept_and_the_submit_still_succeeds(fake_argo: FakeArgoServer) -> None:
    def boom(_: dict[str, Any]) -> None:
        raise RuntimeError("hook failed")

    fake_argo.on_created = boom
    assert submit(fake_argo, body(name="wf-2")).status_code == 200
    assert [str(e) for e in fake_argo.hook_errors] == ["hook failed"]


def test_templates_and_unknown_routes(fake_argo: FakeArgoServer) -> None:
    tmpl = requests.get(f"{fake_argo.url}/api/v1/workflow-templates/argo/sensorprocessingflow", headers=AUTH, timeout=5)
    assert tmpl.status_code == 200
    assert (
        requests.get(f"{fake_argo.url}/api/v1/workflow-templates/argo/nope", headers=AUTH, timeout=5).status_code == 404
    )
    assert requests.get(f"{fake_argo.url}/api/v2/anything", headers=AUTH, timeout=5).status_code == 501
    fake_argo.templates["another"] = {}
    assert submit(fake_argo, {**body(), "resourceName": "another"}).status_code == 200
