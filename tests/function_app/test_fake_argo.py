"""The fake Argo Server itself: it must refuse what Argo refuses, or the other tests prove nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.fakes import FakeArgoServer, Fault
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


# ---------------------------------------------------------------- list: what the queue drainer relies on

TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
COMPLETED_LABEL = "workflows.argoproj.io/completed"
PHASE_LABEL = "workflows.argoproj.io/phase"


def list_workflows(
    fake: FakeArgoServer, params: dict[str, str] | None = None, *, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.get(
        f"{fake.url}/api/v1/workflows/argo", params=params, headers=AUTH if headers is None else headers, timeout=5
    )


def in_flight_request(fake: FakeArgoServer, k: int, template: str = "sensorprocessingflow") -> requests.Response:
    """Exactly the drainer's count request (NOTES.md, "Argo Workflows at scale")."""
    return list_workflows(
        fake,
        {
            "listOptions.labelSelector": f"{TEMPLATE_LABEL}={template},{COMPLETED_LABEL}!=true",
            "fields": "items.metadata.name",
            "listOptions.limit": str(k + 1),
        },
    )


def create(fake: FakeArgoServer, *names: str, template: str = "sensorprocessingflow") -> None:
    for name in names:
        response = submit(fake, {**body(name=name), "resourceName": template})
        assert response.status_code == 200, response.text


def names_of(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["metadata"]["name"] for item in response.json()["items"] or []]


def trimmed_to_name(name: str) -> dict[str, Any]:
    """A workflow trimmed by fields=items.metadata.name, with the zero values Go's re-marshal puts back."""
    return {
        "metadata": {"name": name, "creationTimestamp": None},
        "spec": {"arguments": {}},
        "status": {"startedAt": None, "finishedAt": None},
    }


def test_the_in_flight_count_request_sees_only_unfinished_workflows_of_the_template(
    fake_argo: FakeArgoServer,
) -> None:
    fake_argo.templates["another"] = {}
    create(fake_argo, "run-1", "run-2", "run-3", "run-4", "run-5")
    create(fake_argo, "other-1", template="another")
    fake_argo.set_phase("run-1", "Succeeded")
    fake_argo.set_phase("run-2", "Failed")
    fake_argo.set_phase("run-3", "Running")  # completed=false now; run-4/run-5 have no completed label

    everything = in_flight_request(fake_argo, k=10)
    assert sorted(names_of(everything)) == ["run-3", "run-4", "run-5"]
    assert everything.json() == {"metadata": {}, "items": [trimmed_to_name(n) for n in names_of(everything)]}
    selector = (
        "workflows.argoproj.io%2Fworkflow-template%3Dsensorprocessingflow%2Cworkflows.argoproj.io%2Fcompleted%21%3Dtrue"
    )
    assert f"listOptions.labelSelector={selector}&fields=items.metadata.name&listOptions.limit=11" in str(
        everything.url
    )

    capped = in_flight_request(fake_argo, k=1)  # K=1: at most K+1 = 2 items, enough to see "more than K"
    assert len(names_of(capped)) == 2 and set(names_of(capped)) <= {"run-3", "run-4", "run-5"}
    assert "continue" not in capped.json()["metadata"]  # fields trimmed the list metadata away too

    for name in ("run-3", "run-4", "run-5"):
        fake_argo.set_phase(name, "Error")
    assert in_flight_request(fake_argo, k=10).json() == {"metadata": {}, "items": None}
    assert names_of(in_flight_request(fake_argo, k=10, template="another")) == ["other-1"]
    assert [r.status for r in fake_argo.list_requests()] == [200, 200, 200, 200]
    assert fake_argo.list_requests()[0].query["listOptions.labelSelector"] == [
        f"{TEMPLATE_LABEL}=sensorprocessingflow,{COMPLETED_LABEL}!=true"
    ]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("team=a", ["a-1", "a-2"]),
        ("team==a", ["a-1", "a-2"]),
        ("team!=a", ["b-1", "none-1"]),  # != also matches the workflow without the label
        ("team", ["a-1", "a-2", "b-1"]),
        ("!team", ["none-1"]),
        ("team in (a, b)", ["a-1", "a-2", "b-1"]),
        ("team notin (a),kind=x", ["b-1"]),
        ("", ["a-1", "a-2", "b-1", "none-1"]),
    ],
)
def test_label_selectors_follow_kubernetes_semantics(
    fake_argo: FakeArgoServer, selector: str, expected: list[str]
) -> None:
    for name, labels in [("a-1", "team=a,kind=x"), ("a-2", "team=a"), ("b-1", "team=b,kind=x"), ("none-1", "")]:
        assert submit(fake_argo, body(name=name, labels=labels)).status_code == 200
    assert sorted(names_of(list_workflows(fake_argo, {"listOptions.labelSelector": selector}))) == expected


@pytest.mark.parametrize(
    "selector", ["team=a/b", "-team=a", "a/b/c=d", "team in (a,-b)", "bad key=a", "team in ()", "team>1", "team=a,"]
)
def test_invalid_label_selectors_are_400(fake_argo: FakeArgoServer, selector: str) -> None:
    response = list_workflows(fake_argo, {"listOptions.labelSelector": selector})
    assert (response.status_code, response.json()["code"]) == (400, 3), response.text


def test_limit_and_continue_page_through_every_item_exactly_once(fake_argo: FakeArgoServer) -> None:
    names = [f"wf-{i}" for i in range(7)]
    create(fake_argo, *names)
    fake_argo.set_phase("wf-2", "Succeeded")
    seen: list[str] = []
    sizes: list[int] = []
    token: str | None = None
    while True:
        params = {"listOptions.limit": "3", **({"listOptions.continue": token} if token else {})}
        page = list_workflows(fake_argo, params)
        sizes.append(len(names_of(page)))
        seen += names_of(page)
        assert page.json()["metadata"]["resourceVersion"]
        token = page.json()["metadata"].get("continue")
        if not token:
            break
    assert sizes == [3, 3, 1]
    assert sorted(seen) == names and len(seen) == len(set(seen))

    # With fields, "metadata" must be listed to keep the token.
    kept = list_workflows(fake_argo, {"listOptions.limit": "3", "fields": "metadata,items.metadata.name"})
    assert kept.json()["metadata"]["continue"] == "3"
    assert "continue" not in list_workflows(fake_argo, {"listOptions.limit": "7"}).json()["metadata"]
    assert len(names_of(list_workflows(fake_argo, {"listOptions.limit": "0"}))) == 7
    assert len(names_of(list_workflows(fake_argo, {"listOptions.limit": "0x2"}))) == 2  # Go's ParseInt base 0
    # limit 0 ignores the offset, as Argo's SQL does
    assert len(names_of(list_workflows(fake_argo, {"listOptions.continue": "5"}))) == 7


def test_argo_without_an_archive_sets_continue_only_when_asked_for_the_remaining_count(
    fake_argo: FakeArgoServer,
) -> None:
    create(fake_argo, "wf-1", "wf-2", "wf-3")
    fake_argo.list_continue = False
    assert list_workflows(fake_argo, {"listOptions.limit": "2"}).json()["metadata"].keys() == {"resourceVersion"}
    asked = list_workflows(
        fake_argo, {"listOptions.limit": "2", "listOptions.fieldSelector": "ext.showRemainingItemCount=true"}
    ).json()["metadata"]
    assert (asked["continue"], asked["remainingItemCount"]) == ("2", 1)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"listOptions.limit": "abc"}, 400),
        ({"listOptions.limit": "1.5"}, 400),
        ({"listOptions.limit": ""}, 400),
        ({"listOptions.limit": " 3"}, 400),
        ({"listOptions.limit": "-1"}, 400),
        ({"listOptions.limit": "9223372036854775808"}, 400),
        ({"listOptions.continue": "next"}, 400),
        ({"listOptions.continue": "-3", "listOptions.limit": "2"}, 400),
        ({"listOptions.fieldSelector": "status.phase=Running"}, 400),
        ({"listOptions.fieldSelector": "metadata.namespace=other"}, 400),
        ({"nameFilter": "Prefix"}, 400),
        ({"listOptions.watch": "maybe"}, 400),
    ],
)
def test_bad_list_options_are_400(fake_argo: FakeArgoServer, params: dict[str, str], status: int) -> None:
    create(fake_argo, "wf-1")
    response = list_workflows(fake_argo, params)
    assert (response.status_code, response.json()["code"]) == (status, 3), response.text


def test_the_gateway_checks_the_limit_before_the_token(fake_argo: FakeArgoServer) -> None:
    assert list_workflows(fake_argo, headers={}, params={"listOptions.limit": "x"}).status_code == 400
    assert list_workflows(fake_argo, headers={}, params={"listOptions.continue": "x"}).status_code == 401
    assert list_workflows(fake_argo, headers={}, params={"listOptions.limit": "2"}).json()["code"] == 16


def test_fields_trim_the_list_and_the_workflow_like_argo(fake_argo: FakeArgoServer) -> None:
    create(fake_argo, "wf-1")
    fake_argo.set_phase("wf-1", "Running")

    kept = list_workflows(fake_argo, {"fields": "metadata,items.metadata.name,items.status.phase"}).json()
    assert kept["metadata"] == {"resourceVersion": kept["metadata"]["resourceVersion"]}
    assert kept["items"] == [
        {
            "metadata": {"name": "wf-1", "creationTimestamp": None},
            "spec": {"arguments": {}},
            "status": {"phase": "Running", "startedAt": None, "finishedAt": None},
        }
    ]
    # A leading "-" makes the WHOLE list exclusions; spec comes back as Go's zero value.
    (excluded,) = list_workflows(fake_argo, {"fields": "-items.spec,items.metadata.labels"}).json()["items"]
    assert excluded["spec"] == {"arguments": {}} and "labels" not in excluded["metadata"]
    assert excluded["metadata"]["annotations"] == {} and excluded["status"]["phase"] == "Running"
    # Argo matches by string prefix: asking for namespace keeps name too ("items.metadata.name" is a prefix).
    (quirk,) = list_workflows(fake_argo, {"fields": "items.metadata.namespace"}).json()["items"]
    assert quirk["metadata"] == {"name": "wf-1", "namespace": "argo", "creationTimestamp": None}
    assert list_workflows(fake_argo, {"fields": "metadata"}).json()["items"] is None  # Go puts back "items": null

    got = requests.get(
        f"{fake_argo.url}/api/v1/workflows/argo/wf-1", params={"fields": "status.phase"}, headers=AUTH, timeout=5
    )
    assert got.json() == {
        "metadata": {"creationTimestamp": None},
        "spec": {"arguments": {}},
        "status": {"phase": "Running", "startedAt": None, "finishedAt": None},
    }
    untrimmed = list_workflows(fake_argo).json()["items"][0]
    assert untrimmed["metadata"]["labels"][TEMPLATE_LABEL] == "sensorprocessingflow"


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Error"])
def test_finished_workflows_get_the_completed_label(fake_argo: FakeArgoServer, phase: str) -> None:
    create(fake_argo, "wf-1")
    labels = fake_argo.workflow("wf-1")["metadata"]["labels"]  # type: ignore[index]
    assert COMPLETED_LABEL not in labels and PHASE_LABEL not in labels  # the controller has not seen it yet
    fake_argo.set_phase("wf-1", "Running")
    labels = fake_argo.workflow("wf-1")["metadata"]["labels"]  # type: ignore[index]
    assert (labels[COMPLETED_LABEL], labels[PHASE_LABEL]) == ("false", "Running")
    fake_argo.set_phase("wf-1", phase)
    workflow = fake_argo.workflow("wf-1")
    assert workflow is not None
    assert workflow["metadata"]["labels"][COMPLETED_LABEL] == "true"
    assert workflow["metadata"]["labels"][PHASE_LABEL] == phase
    assert workflow["status"]["phase"] == phase and workflow["status"]["finishedAt"]
    listed = list_workflows(fake_argo, {"listOptions.labelSelector": f"{COMPLETED_LABEL}=true"})
    assert names_of(listed) == ["wf-1"]
    fake_argo.set_phase("wf-1", phase)  # the same phase again changes nothing
    with pytest.raises(ValueError, match="already finished"):
        fake_argo.set_phase("wf-1", "Running")
    with pytest.raises(ValueError, match="unknown workflow phase"):
        fake_argo.set_phase("wf-1", "succeeded")


def test_in_flight_is_measured_per_template(fake_argo: FakeArgoServer) -> None:
    fake_argo.templates["another"] = {}
    assert (fake_argo.in_flight(), fake_argo.max_in_flight(template="sensorprocessingflow")) == (0, 0)
    create(fake_argo, "wf-1", "wf-2", "wf-3")
    create(fake_argo, "other-1", template="another")
    assert fake_argo.in_flight(template="sensorprocessingflow") == 3
    assert fake_argo.max_in_flight(template="sensorprocessingflow") == 3
    fake_argo.set_phase("wf-1", "Running")  # running is still in flight
    fake_argo.set_phase("wf-2", "Succeeded")
    fake_argo.set_phase("wf-3", "Failed")
    assert fake_argo.in_flight(template="sensorprocessingflow") == 1
    assert fake_argo.max_in_flight(template="sensorprocessingflow") == 3  # the maximum stays
    create(fake_argo, "wf-4", "wf-5")
    assert fake_argo.in_flight(template="sensorprocessingflow") == 3
    assert fake_argo.max_in_flight(template="sensorprocessingflow") == 3
    create(fake_argo, "wf-6")
    assert fake_argo.max_in_flight(template="sensorprocessingflow") == 4
    assert (fake_argo.in_flight(template="another"), fake_argo.max_in_flight(template="another")) == (1, 1)
    assert (fake_argo.in_flight(), fake_argo.max_in_flight()) == (5, 5)  # None: all templates
    assert submit(fake_argo, body(name="dry", serverDryRun=True)).status_code == 200
    assert fake_argo.max_in_flight() == 5  # a dry run creates nothing


def test_in_flight_maximum_under_concurrent_submits(fake_argo: FakeArgoServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda i: submit(fake_argo, body(name=f"wf-{i}")).status_code, range(24)))
    assert statuses == [200] * 24
    assert fake_argo.max_in_flight(template="sensorprocessingflow") == 24 == fake_argo.in_flight()


def test_delete_then_create_again(fake_argo: FakeArgoServer) -> None:
    create(fake_argo, "wf-1", "wf-2")
    fake_argo.set_phase("wf-1", "Succeeded")
    fake_argo.delete_workflow("wf-1")  # as Argo's TTL/GC does
    assert requests.get(f"{fake_argo.url}/api/v1/workflows/argo/wf-1", headers=AUTH, timeout=5).status_code == 404
    assert names_of(list_workflows(fake_argo)) == ["wf-2"]
    create(fake_argo, "wf-1")  # no 409 any more
    workflow = fake_argo.workflow("wf-1")
    assert workflow is not None and COMPLETED_LABEL not in workflow["metadata"]["labels"]
    assert [w["metadata"]["name"] for w in fake_argo.created] == ["wf-1", "wf-2", "wf-1"]
    assert fake_argo.in_flight() == 2
    with pytest.raises(KeyError):
        fake_argo.delete_workflow("nope")

    url = f"{fake_argo.url}/api/v1/workflows/argo/wf-2"
    assert requests.delete(url, timeout=5).json()["code"] == 16
    deleted = requests.delete(url, headers=AUTH, timeout=5)
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert fake_argo.workflow("wf-2") is None and fake_argo.in_flight() == 1
    again = requests.delete(url, headers=AUTH, timeout=5)
    assert (again.status_code, again.json()) == (404, {"code": 5, "message": 'workflows.argoproj.io "wf-2" not found'})
    bad = requests.delete(url, params={"deleteOptions.gracePeriodSeconds": "soon"}, headers=AUTH, timeout=5)
    assert (bad.status_code, bad.json()["code"]) == (400, 3)
    create(fake_argo, "wf-2")
    assert submit(fake_argo, body(name="wf-2")).status_code == 409


@pytest.mark.parametrize(("status", "code"), [(401, 16), (403, 7), (404, 5)])
def test_list_faults_answer_with_argos_error_shape(fake_argo: FakeArgoServer, status: int, code: int) -> None:
    create(fake_argo, "wf-1")
    fake_argo.fail_next(Fault.status_code(status, "injected list failure", route="list"))
    assert submit(fake_argo, body(name="wf-2")).status_code == 200  # a list fault leaves submits alone
    failed = in_flight_request(fake_argo, k=5)
    assert (failed.status_code, failed.json()) == (status, {"code": code, "message": "injected list failure"})
    assert failed.headers["Content-Type"] == "application/json"
    assert sorted(names_of(in_flight_request(fake_argo, k=5))) == ["wf-1", "wf-2"]  # the fault is used up
    assert [(r.status, r.fault) for r in fake_argo.list_requests()] == [(status, "status"), (200, None)]


def test_list_unavailable_and_reset(fake_argo: FakeArgoServer) -> None:
    fake_argo.fail_next(Fault.unavailable(route="list"), Fault.reset(route="list"))
    assert in_flight_request(fake_argo, k=1).json()["code"] == 14
    with pytest.raises(requests.ConnectionError):
        in_flight_request(fake_argo, k=1)
    assert in_flight_request(fake_argo, k=1).json()["items"] is None
    assert [r.status for r in fake_argo.list_requests()] == [503, -1, 200]
    assert fake_argo.pending_faults() == []
