"""``sensorctl doctor``: check a live deployment end to end, and ``sensorctl cron-forbid``.

Decide-then-act: :func:`observe` does every (read-only) call and records what it saw in an
:class:`Observations`; :func:`diagnose` is pure and turns that into :class:`Finding` s, one per
check, each problem with what to do about it. The doctor never creates anything: the RBAC check is a
``serverDryRun: true`` submit of the app's exact body (``function_app.submission.decide`` for a
dummy chunk), blobs/queues/tables are only read (exists, properties, a one-entity page, a peek).

Checks (``Finding.check``):

===============  ==========================================================================
argo.reachable   ``GET /api/v1/version`` answers (no token needed)
argo.tls         the certificate was verified (``ARGO_INSECURE_SKIP_VERIFY`` is a warning)
argo.token       a GET that needs the token is not a 401
argo.template    the WorkflowTemplate exists and declares ``chunks`` (JSON), ``container`` (str)
                 and ``force`` (bool), per its ``metaflow/parameters`` annotation, and nothing
                 required that the app does not send
argo.rbac.submit ``serverDryRun`` submit of the app's body: not 403 (``create`` on workflows)
argo.rbac.list   the in-flight list (``list`` on workflows)
argo.cron        the CronWorkflow exists, has a schedule, is not suspended (warning), points at the
                 template, and has ``concurrencyPolicy: Forbid``
storage.*        chunk/results containers, the events and poison queues, the ledger table exist
limits.*         queue depth, oldest message age, poison count, in-flight workflows within limits
===============  ==========================================================================

``cron-forbid`` GETs the CronWorkflow and PUTs it back with ``spec.concurrencyPolicy: Forbid``
(``CronWorkflowService_UpdateCronWorkflow``; the GET's ``resourceVersion`` makes a concurrent
change a 409 instead of a lost update).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from function_app.settings import Settings

__all__ = [
    "EXPECTED_PARAMETERS",
    "Finding",
    "HttpProbe",
    "Limits",
    "Observations",
    "StorageObservation",
    "cron_forbid",
    "diagnose",
    "observe",
    "observe_storage",
]

# What the function app sends (function_app.submission.decide) and how Metaflow must have declared it.
EXPECTED_PARAMETERS = {"chunks": "JSON", "container": "str", "force": "bool"}
DRY_RUN_CHUNK = "doctor/dry-run/2000/01/01/000000.csv"
DRY_RUN_ETAG = '"0x8DC000000000000"'
_MAX_TEXT = 300


@dataclass(frozen=True)
class Limits:
    max_queue_depth: int = 1000
    max_oldest_seconds: float = 3600.0
    max_poison: int = 0
    max_in_flight: int = 20


@dataclass
class HttpProbe:
    """One request's outcome: ``status`` (None: no answer), ``failure`` ("tls", "unreachable", ""),
    the server's message or the error (sanitised) and the JSON body (None if not JSON)."""

    status: int | None = None
    failure: str = ""
    message: str = ""
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class StorageObservation:
    """Each resource: True exists, False absent, or a string: the error reading it."""

    containers: dict[str, bool | str] = field(default_factory=dict)
    queues: dict[str, bool | str] = field(default_factory=dict)
    table: dict[str, bool | str] = field(default_factory=dict)
    queue_depth: int | None = None
    oldest_seconds: float | None = None
    poison_count: int | None = None


@dataclass
class Observations:
    server_url: str
    namespace: str
    template: str
    insecure_skip_verify: bool
    ca_bundle: str | None
    dry_run_parameters: dict[str, str]
    version: HttpProbe
    template_get: HttpProbe | None = None
    dry_run: HttpProbe | None = None
    in_flight: HttpProbe | None = None
    cron: HttpProbe | None = None
    storage: StorageObservation | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # "ok" | "warning" | "error"
    message: str
    fix: str = ""

    def line(self) -> str:
        tag = {"ok": "ok     ", "warning": "WARNING", "error": "ERROR  "}[self.severity]
        return f"{tag} {self.check}: {self.message}" + (f" -> {self.fix}" if self.fix else "")


# --------------------------------------------------------------------------- observe (I/O)


class _Http:
    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        from function_app.argo_backend import build_session

        self.settings = settings
        self.session = session if session is not None else build_session(settings)
        self.base = settings.argo_server_url.rstrip("/")
        self.ns = quote(settings.argo_namespace, safe="")
        self.verify: bool | str = False if settings.argo_insecure_skip_verify else (settings.argo_ca_bundle or True)
        self.timeout = (settings.argo_connect_timeout, settings.argo_read_timeout)

    def clean(self, text: str) -> str:
        token = self.settings.argo_token
        if token:
            text = text.replace(token, "***")
        text = "".join(c if c.isprintable() else " " for c in text)
        return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None) -> HttpProbe:
        from function_app.argo_backend import _is_verification_failure  # the app's own test of a TLS failure

        try:
            response = self.session.request(
                method,
                self.base + path,
                params=params,
                json=body,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            kind = "tls" if _is_verification_failure(exc) else "unreachable"
            return HttpProbe(failure=kind, message=self.clean(f"{type(exc).__name__}: {exc}"))
        except requests.RequestException as exc:
            return HttpProbe(failure="unreachable", message=self.clean(f"{type(exc).__name__}: {exc}"))
        try:
            payload = response.json()
        except ValueError:
            payload = None
        message = ""
        if not 200 <= response.status_code < 300:
            if isinstance(payload, dict):
                message = str(payload.get("message") or payload.get("error") or payload)
            else:
                message = response.text[:_MAX_TEXT] or response.reason or ""
            if 300 <= response.status_code < 400:
                message = f"redirect to {response.headers.get('Location', '?')} (not followed)"
        return HttpProbe(status=response.status_code, message=self.clean(message), body=payload)


def dry_run_body(settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """The app's exact submit body for a dummy chunk, with ``serverDryRun: true``; and its parameters."""
    from function_app.submission import Submission, decide

    decision = decide(
        trigger="http",
        container=settings.sensor_container,
        chunks=[DRY_RUN_CHUNK],
        etags=[DRY_RUN_ETAG],
        force=False,
        settings=settings,
        request_id="sensorctl-doctor",
    )
    if not isinstance(decision, Submission):  # a settings problem the app would hit too
        raise ValueError(f"the app would refuse its own dry-run submission: {decision}")
    body = copy.deepcopy(decision.body)
    body["submitOptions"]["serverDryRun"] = True
    return body, dict(decision.parameters)


def observe(
    settings: Settings,
    *,
    limits: Limits | None = None,
    session: requests.Session | None = None,
    storage: Callable[[Settings], StorageObservation | None] | None = None,
) -> Observations:
    """Every read the doctor needs; stops calling Argo once it is unreachable or refuses the token."""
    limits = limits or Limits()
    http = _Http(settings, session)
    body, parameters = dry_run_body(settings)
    obs = Observations(
        server_url=settings.argo_server_url,
        namespace=settings.argo_namespace,
        template=settings.argo_workflow_template,
        insecure_skip_verify=settings.argo_insecure_skip_verify,
        ca_bundle=settings.argo_ca_bundle,
        dry_run_parameters=parameters,
        version=http.request("GET", "/api/v1/version"),
        limits=limits,
    )
    if obs.version.ok:
        name = quote(settings.argo_workflow_template, safe="")
        obs.template_get = http.request("GET", f"/api/v1/workflow-templates/{http.ns}/{name}")
        if obs.template_get.status != 401:
            obs.dry_run = http.request("POST", f"/api/v1/workflows/{http.ns}/submit", body=body)
            obs.in_flight = http.request(
                "GET",
                f"/api/v1/workflows/{http.ns}",
                params={
                    "listOptions.labelSelector": (
                        f"workflows.argoproj.io/workflow-template={settings.argo_workflow_template},"
                        "workflows.argoproj.io/completed!=true"
                    ),
                    "listOptions.limit": str(limits.max_in_flight + 1),
                    "fields": "items.metadata.name",
                },
            )
            obs.cron = http.request("GET", f"/api/v1/cron-workflows/{http.ns}/{name}")
    obs.storage = (storage or observe_storage)(settings)
    return obs


def _read(action: Callable[[], Any]) -> bool | str:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        action()
    except ResourceNotFoundError:
        return False
    except Exception as exc:  # any storage error is an observation, not a crash
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:_MAX_TEXT] if str(exc) else ''}"
    return True


def _queue_clients(settings: Settings) -> tuple[Any, Any]:
    """The events and poison QueueClients, built without creating anything (the doctor is read-only)."""
    from function_app.storage import event_queue_clients

    queue = event_queue_clients(settings)
    return queue.queue, queue.poison_queue


def observe_storage(settings: Settings, *, now: datetime | None = None) -> StorageObservation:
    """Read-only: container exists, queue properties and a peek, one page of one ledger entity."""
    from function_app.storage import blob_service_client, ledger

    obs = StorageObservation()
    service = blob_service_client(settings)
    for container in (settings.sensor_container, settings.sensor_results_container):
        obs.containers[container] = _read(service.get_container_client(container).get_container_properties)
    main, poison = _queue_clients(settings)
    props: dict[str, Any] = {}

    def main_props() -> None:
        props["main"] = main.get_queue_properties()

    def poison_props() -> None:
        props["poison"] = poison.get_queue_properties()

    obs.queues[settings.events_queue] = _read(main_props)
    obs.queues[settings.poison_queue] = _read(poison_props)
    if "main" in props:
        obs.queue_depth = int(props["main"].approximate_message_count or 0)
        peeked: list[Any] = []
        if _read(lambda: peeked.extend(main.peek_messages(max_messages=1))) is True and peeked:
            inserted = peeked[0].inserted_on
            if inserted is not None:
                obs.oldest_seconds = max(0.0, ((now or datetime.now(UTC)) - inserted).total_seconds())
        elif obs.queue_depth == 0:
            obs.oldest_seconds = 0.0
    if "poison" in props:
        obs.poison_count = int(props["poison"].approximate_message_count or 0)
    table = ledger(settings).table  # no I/O until used; a read does not create the table
    obs.table[settings.ledger_table] = _read(lambda: next(iter(table.list_entities(results_per_page=1).by_page())))
    return obs


# --------------------------------------------------------------------------- diagnose (pure)


def diagnose(obs: Observations) -> list[Finding]:
    findings: list[Finding] = []
    add = findings.append
    v = obs.version
    if v.failure == "tls":
        add(
            Finding(
                "argo.tls",
                "error",
                f"TLS verification of {obs.server_url} failed ({v.message})",
                "set ARGO_CA_BUNDLE to the PEM of the Argo Server's CA (never ARGO_INSECURE_SKIP_VERIFY in production)",
            )
        )
        return findings + _storage_findings(obs)
    if not v.ok:
        detail = v.message if v.failure else f"HTTP {v.status}: {v.message}"
        add(
            Finding(
                "argo.reachable",
                "error",
                f"Argo Server at {obs.server_url} did not answer GET /api/v1/version ({detail})",
                "check ARGO_SERVER_URL (https://<host>:2746), the network path and that argo-server runs",
            )
        )
        return findings + _storage_findings(obs)
    add(Finding("argo.reachable", "ok", f"Argo Server at {obs.server_url} answers ({_version(v)})"))
    if obs.server_url.startswith("http://"):
        add(Finding("argo.tls", "warning", "ARGO_SERVER_URL is plain http: the token travels unencrypted", "use https"))
    elif obs.insecure_skip_verify:
        add(
            Finding(
                "argo.tls",
                "warning",
                "ARGO_INSECURE_SKIP_VERIFY=true: the certificate is NOT verified (anyone on the path can read the token)",
                "set ARGO_CA_BUNDLE to the server's CA certificate and remove ARGO_INSECURE_SKIP_VERIFY",
            )
        )
    else:
        add(Finding("argo.tls", "ok", "certificate verified" + (f" against {obs.ca_bundle}" if obs.ca_bundle else "")))
    t = obs.template_get
    assert t is not None
    if t.status == 401:
        add(
            Finding(
                "argo.token",
                "error",
                f"the Argo Server refused the token (401: {t.message})",
                "set ARGO_TOKEN to the sensor-pipeline-submitter service-account token "
                "(kubectl -n <ns> get secret sensor-pipeline-submitter.service-account-token -o jsonpath='{.data.token}' | base64 -d)",
            )
        )
        return findings + _storage_findings(obs)
    if not t.ok and t.failure:
        add(Finding("argo.token", "error", f"GET of the template failed: {t.message}", "check the Argo Server"))
    else:
        add(Finding("argo.token", "ok", "token accepted"))
    findings.extend(_template_findings(obs, t))
    findings.extend(_rbac_findings(obs))
    findings.extend(_cron_findings(obs))
    findings.extend(_storage_findings(obs))
    return findings


def _version(probe: HttpProbe) -> str:
    return str(probe.body.get("version", "?")) if isinstance(probe.body, dict) else "?"


def _http_detail(p: HttpProbe) -> str:
    return p.message if p.failure else f"HTTP {p.status}: {p.message}"


def _template_findings(obs: Observations, t: HttpProbe) -> list[Finding]:
    where = f"WorkflowTemplate {obs.template!r} in namespace {obs.namespace!r}"
    deploy = "run `make deploy-flow` (python flows/sensor_processing_flow.py --environment=conda --with retry argo-workflows create)"
    if t.status == 404:
        return [
            Finding("argo.template", "error", f"{where} does not exist", f"{deploy}, or fix ARGO_WORKFLOW_TEMPLATE")
        ]
    if t.status == 403:
        return [
            Finding(
                "argo.template",
                "error",
                f"RBAC: the token may not get {where} (403: {t.message})",
                "grant get on workflowtemplates (deploy/argo/role.yaml)",
            )
        ]
    if not t.ok or not isinstance(t.body, dict):
        return [
            Finding("argo.template", "error", f"GET of {where} failed ({_http_detail(t)})", "check the Argo Server")
        ]
    annotations = (t.body.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get("metaflow/parameters")
    try:
        declared = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        declared = None
    if not isinstance(declared, dict):
        return [
            Finding(
                "argo.template",
                "error",
                f"{where} has no readable metaflow/parameters annotation: not compiled by Metaflow?",
                deploy,
            )
        ]
    spec_names = {
        p.get("name")
        for p in ((t.body.get("spec") or {}).get("arguments") or {}).get("parameters") or []
        if isinstance(p, dict)
    }
    problems: list[Finding] = []
    for name in obs.dry_run_parameters:
        want = EXPECTED_PARAMETERS.get(name, "?")
        entry = declared.get(name)
        if not isinstance(entry, dict) or name not in spec_names:
            problems.append(
                Finding(
                    "argo.template",
                    "error",
                    f"{where} does not declare parameter {name!r}: Argo silently drops what the app sends for it",
                    f"redeploy the flow with Parameter {name!r} ({want}): {deploy}",
                )
            )
            continue
        got = entry.get("type")
        if got != want:
            problems.append(
                Finding(
                    "argo.template",
                    "error",
                    f"{where} declares parameter {name!r} as {got!r}, but the app encodes it as {want!r}",
                    f"make the flow's Parameter {name!r} type {want} and redeploy ({deploy})",
                )
            )
    for name, entry in declared.items():
        if name not in obs.dry_run_parameters and isinstance(entry, dict) and entry.get("is_required"):
            problems.append(
                Finding(
                    "argo.template",
                    "error",
                    f"{where} requires parameter {name!r}, which the app never sends: every submit would fail",
                    "give it a default in the flow, or teach function_app.submission.decide to send it",
                )
            )
    if problems:
        return problems
    kinds = ", ".join(f"{k} ({v})" for k, v in EXPECTED_PARAMETERS.items())
    return [Finding("argo.template", "ok", f"{where} declares {kinds}")]


def _rbac_findings(obs: Observations) -> list[Finding]:
    out: list[Finding] = []
    d, li = obs.dry_run, obs.in_flight
    assert d is not None and li is not None
    if d.ok:
        out.append(Finding("argo.rbac.submit", "ok", "a serverDryRun submit of the app's exact body is accepted"))
    elif d.status == 403:
        out.append(
            Finding(
                "argo.rbac.submit",
                "error",
                f"RBAC: the token may not create workflows in {obs.namespace!r} (403 on the dry-run submit: {d.message})",
                "apply deploy/argo (Role sensor-pipeline-submitter: create on workflows) and bind it to the token's service account",
            )
        )
    elif d.status == 404:
        pass  # the template is missing: already said
    else:
        out.append(
            Finding(
                "argo.rbac.submit",
                "error",
                f"the dry-run submit of the app's body was refused ({_http_detail(d)})",
                "read the server's message: the app's real submits would fail the same way",
            )
        )
    if li.ok and isinstance(li.body, dict) and (li.body.get("items") is None or isinstance(li.body.get("items"), list)):
        count = len(li.body.get("items") or [])
        out.append(Finding("argo.rbac.list", "ok", "the in-flight list is allowed"))
        limit = obs.limits.max_in_flight
        if count > limit:
            out.append(
                Finding(
                    "limits.in_flight",
                    "error",
                    f"more than {limit} workflows of {obs.template!r} are in flight",
                    "look for stuck workflows (argo list --running) or raise --max-in-flight / COALESCE_MAX_IN_FLIGHT",
                )
            )
        else:
            out.append(Finding("limits.in_flight", "ok", f"{count} workflow(s) in flight (limit {limit})"))
    elif li.status == 403:
        out.append(
            Finding(
                "argo.rbac.list",
                "error",
                f"RBAC: the token may not list workflows in {obs.namespace!r} (403: {li.message}); the drainer's in-flight count fails",
                "apply deploy/argo (Role sensor-pipeline-submitter: list on workflows)",
            )
        )
    else:
        out.append(
            Finding(
                "argo.rbac.list", "error", f"the in-flight list failed ({_http_detail(li)})", "check the Argo Server"
            )
        )
    return out


def _cron_findings(obs: Observations) -> list[Finding]:
    c = obs.cron
    assert c is not None
    where = f"CronWorkflow {obs.template!r}"
    if c.status == 404:
        return [
            Finding(
                "argo.cron",
                "error",
                f"{where} does not exist: the hourly fallback run (@schedule) is not scheduled",
                "run `make deploy-flow` (argo-workflows create makes it), then `sensorctl cron-forbid`",
            )
        ]
    if c.status == 403:
        return [
            Finding("argo.cron", "error", f"RBAC: the token may not get {where} (403)", "grant get on cronworkflows")
        ]
    if not c.ok or not isinstance(c.body, dict):
        return [Finding("argo.cron", "error", f"GET of {where} failed ({_http_detail(c)})", "check the Argo Server")]
    spec = c.body.get("spec") or {}
    schedules = spec.get("schedules") or ([spec["schedule"]] if spec.get("schedule") else [])
    out: list[Finding] = []
    if not schedules:
        out.append(Finding("argo.cron", "error", f"{where} has no schedule", "redeploy the flow (@schedule)"))
    if spec.get("suspend"):
        out.append(Finding("argo.cron", "warning", f"{where} is suspended", "argo cron resume " + obs.template))
    ref = ((spec.get("workflowSpec") or {}).get("workflowTemplateRef") or {}).get("name")
    if ref != obs.template:
        out.append(
            Finding("argo.cron", "error", f"{where} runs template {ref!r}, not {obs.template!r}", "redeploy the flow")
        )
    policy = spec.get("concurrencyPolicy") or "Allow (default)"
    if policy != "Forbid":
        out.append(
            Finding(
                "argo.cron",
                "error",
                f"{where} has concurrencyPolicy {policy}: a slow fallback run lets the next one start beside it",
                "run `sensorctl cron-forbid`",
            )
        )
    if not any(f.severity == "error" for f in out):
        out.append(
            Finding("argo.cron", "ok", f"{where} schedule {', '.join(map(str, schedules))}, concurrencyPolicy Forbid")
        )
    return out


def _storage_findings(obs: Observations) -> list[Finding]:
    s = obs.storage
    if s is None:
        return []
    out: list[Finding] = []
    groups = (
        ("storage.container", "container", s.containers, "create it (az storage container create -n {name})"),
        (
            "storage.queue",
            "queue",
            s.queues,
            "create it (az storage queue create -n {name}; the drainer also creates it)",
        ),
        ("storage.table", "table", s.table, "create it (az storage table create -n {name}; the first claim also does)"),
    )
    for check, kind, items, fix in groups:
        for name, state in items.items():
            if state is True:
                out.append(Finding(check, "ok", f"{kind} {name!r} exists"))
            elif state is False:
                out.append(Finding(check, "error", f"{kind} {name!r} does not exist", fix.format(name=name)))
            else:
                out.append(
                    Finding(
                        check,
                        "error",
                        f"reading {kind} {name!r} failed: {state}",
                        "check SENSOR_STORAGE and its role assignments",
                    )
                )
    lim = obs.limits
    if s.queue_depth is not None:
        bad = s.queue_depth > lim.max_queue_depth
        out.append(
            Finding(
                "limits.queue_depth",
                "error" if bad else "ok",
                f"about {s.queue_depth} message(s) queued (limit {lim.max_queue_depth})",
                "is the drainer running? check the drain_trigger logs" if bad else "",
            )
        )
    if s.oldest_seconds is not None:
        bad = s.oldest_seconds > lim.max_oldest_seconds
        out.append(
            Finding(
                "limits.oldest_message",
                "error" if bad else "ok",
                f"oldest visible message is {s.oldest_seconds:.0f} s old (limit {lim.max_oldest_seconds:g} s)",
                "the drainer is not keeping up or not running" if bad else "",
            )
        )
    if s.poison_count is not None:
        bad = s.poison_count > lim.max_poison
        out.append(
            Finding(
                "limits.poison",
                "error" if bad else "ok",
                f"{s.poison_count} message(s) in the poison queue (limit {lim.max_poison})",
                "read their 'reason' (az storage message peek) and re-enqueue 'original' once fixed" if bad else "",
            )
        )
    return out


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.severity == "error" for f in findings) else 0


def as_json(findings: list[Finding]) -> dict[str, Any]:
    return {
        "ok": exit_code(findings) == 0,
        "errors": sum(f.severity == "error" for f in findings),
        "warnings": sum(f.severity == "warning" for f in findings),
        "findings": [asdict(f) for f in findings],
    }


# --------------------------------------------------------------------------- cron-forbid (act)


class CronForbidError(RuntimeError):
    """The CronWorkflow could not be read or updated; the message says why and what to do."""


def cron_forbid(settings: Settings, *, session: requests.Session | None = None) -> tuple[bool, str]:
    """Set ``spec.concurrencyPolicy: Forbid`` on the template's CronWorkflow. (changed?, message)."""
    http = _Http(settings, session)
    name = settings.argo_workflow_template
    path = f"/api/v1/cron-workflows/{http.ns}/{quote(name, safe='')}"
    got = http.request("GET", path)
    if not got.ok or not isinstance(got.body, dict):
        hint = {404: "create it first: make deploy-flow", 401: "check ARGO_TOKEN", 403: "grant get on cronworkflows"}
        raise CronForbidError(
            f"GET CronWorkflow {name!r}: {_http_detail(got)}" + (f" ({hint[got.status]})" if got.status in hint else "")
        )
    cron = got.body
    spec = cron.setdefault("spec", {})
    if spec.get("concurrencyPolicy") == "Forbid":
        return False, f"CronWorkflow {name!r} already has concurrencyPolicy Forbid"
    before = spec.get("concurrencyPolicy") or "Allow (default)"
    spec["concurrencyPolicy"] = "Forbid"
    cron.pop("status", None)  # the update replaces the spec; status is the controller's
    put = http.request("PUT", path, body={"namespace": settings.argo_namespace, "cronWorkflow": cron})
    if not put.ok:
        hint = {409: "changed meanwhile: run it again", 403: "grant update on cronworkflows (deploy/argo/role.yaml)"}
        raise CronForbidError(
            f"PUT CronWorkflow {name!r}: {_http_detail(put)}" + (f" ({hint[put.status]})" if put.status in hint else "")
        )
    policy = (put.body or {}).get("spec", {}).get("concurrencyPolicy") if isinstance(put.body, dict) else None
    if policy != "Forbid":
        raise CronForbidError(f"PUT CronWorkflow {name!r} answered without concurrencyPolicy Forbid ({policy!r})")
    return True, f"CronWorkflow {name!r}: concurrencyPolicy {before} -> Forbid"


# --------------------------------------------------------------------------- command line


def add_parsers(sub: Any) -> None:
    """The ``doctor`` and ``cron-forbid`` subcommands (wired into ``sensorctl.cli.build_parser``)."""
    doctor = sub.add_parser("doctor", help="check the live deployment end to end (read-only)")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.add_argument("--max-queue-depth", type=int, default=Limits.max_queue_depth, help="default %(default)s")
    doctor.add_argument(
        "--max-oldest-seconds",
        type=float,
        default=Limits.max_oldest_seconds,
        help="oldest message age; default %(default)s",
    )
    doctor.add_argument(
        "--max-poison", type=int, default=Limits.max_poison, help="poison messages; default %(default)s"
    )
    doctor.add_argument(
        "--max-in-flight", type=int, default=None, help="unfinished workflows (default: COALESCE_MAX_IN_FLIGHT)"
    )
    doctor.add_argument("--skip-storage", action="store_true", help="check Argo only")
    sub.add_parser("cron-forbid", help="set concurrencyPolicy: Forbid on the flow's CronWorkflow (GET, then PUT)")


def cmd_doctor(args: Any, out: Any) -> int:
    import os

    from function_app.settings import load_settings

    settings = load_settings(os.environ)
    limits = Limits(
        max_queue_depth=args.max_queue_depth,
        max_oldest_seconds=args.max_oldest_seconds,
        max_poison=args.max_poison,
        max_in_flight=args.max_in_flight if args.max_in_flight is not None else settings.coalesce_max_in_flight,
    )
    storage = (lambda _s: None) if args.skip_storage else None
    findings = diagnose(observe(settings, limits=limits, storage=storage))
    if args.json:
        print(json.dumps(as_json(findings), indent=2), file=out)
    else:
        for finding in findings:
            print(finding.line(), file=out)
        errors = sum(f.severity == "error" for f in findings)
        print(f"{errors} problem(s) found" if errors else "all checks passed", file=out)
    return exit_code(findings)


def cmd_cron_forbid(args: Any, out: Any) -> int:
    import os
    import sys

    from function_app.settings import load_settings

    try:
        _, message = cron_forbid(load_settings(os.environ))
    except CronForbidError as exc:
        print(f"sensorctl cron-forbid: {exc}", file=sys.stderr)
        return 1
    print(message, file=out)
    return 0
