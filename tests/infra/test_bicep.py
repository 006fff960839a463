"""The contract between infra/*.bicep and the code, checked without Azure or the Bicep compiler.

The Bicep files are parsed with pycep-parser (the parser checkov uses); the settings the code reads
are derived from ``function_app/settings.py`` by regex, so a new setting there fails
``test_every_setting_the_code_reads_is_set`` until main.bicep sets it. Run by ``infra/check.sh``
(its own venv); skipped where pycep-parser is not installed (the project's venv).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pycep = pytest.importorskip("pycep")

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SETTINGS_SOURCE = (ROOT / "function_app" / "settings.py").read_text()

ROLE_GUIDS = {  # built-in role definitions, the same in every tenant
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageQueueDataMessageSender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
COMPLETED_APIS = ["PutBlob", "PutBlockList", "FlushWithClose", "CopyBlob"]


def parse(relative: str) -> dict[str, Any]:
    return pycep.BicepParser().parse(file_path=INFRA / relative)


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return parse("main.bicep")


@pytest.fixture(scope="module")
def webhook() -> dict[str, Any]:
    return parse("app/webhook-subscription.bicep")


def expr(node: Any) -> Any:
    """A parsed expression in Bicep-like text where it is a reference (``a.b.c``), else as parsed."""
    if isinstance(node, dict) and set(node) == {"operator"} and node["operator"]["type"] == "property_accessor":
        operands = node["operator"]["operands"]
        return f"{expr(operands['operand_1'])}.{expr(operands['operand_2'])}"
    return node


def number(node: Any) -> Any:
    """A number literal; pycep parses ``-1`` as the operator ``minus`` applied to 1."""
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "minus":
        return -node["operator"]["operands"]["integer_value"]
    return node


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """The declaration's body, under the ``if (...)`` of a conditional resource or module."""
    config = resource["config"]
    return config["config"] if "condition" in config else config


def condition(resource: dict[str, Any]) -> Any:
    return resource["config"].get("condition")


def equals(name: str, value: str) -> dict[str, Any]:
    return {"operator": {"type": "equals", "operands": {"operand_1": name, "operand_2": value}}}


def of_type(doc: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in doc["resources"].items() if r["type"] == type_}


def default(doc: dict[str, Any], param: str) -> Any:
    return doc["parameters"][param]["default"]


@pytest.fixture(scope="module")
def app_settings(main: dict[str, Any]) -> dict[str, Any]:
    configs = of_type(main, "Microsoft.Web/sites/config")
    (resource,) = (r for r in configs.values() if body(r)["name"] == "appsettings")
    assert body(resource)["parent"] == "functionApp"
    return body(resource)["properties"]


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("path", sorted(p.relative_to(INFRA).as_posix() for p in INFRA.rglob("*.bicep")))
def test_every_bicep_file_parses(path: str) -> None:
    doc = parse(path)
    assert doc["resources"], path


# ------------------------------------------------------------------ app settings


def settings_the_code_reads() -> set[str]:
    """Every app setting name function_app/settings.py reads, found in its source."""
    patterns = [
        r'env\.get\(\s*"([A-Za-z_][A-Za-z0-9_]*)"',  # env.get("X", ...)
        r'env\[\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*\]',  # env["X"]
        r'\(\s*env\s*,\s*"([A-Za-z_][A-Za-z0-9_]*)"',  # _number(env, "X" ...), _choice, _flag, _argo_name...
        r'\)\.get\(\s*"([A-Za-z_][A-Za-z0-9_]*)"',  # (os.environ if env is None else env).get("X")
    ]
    return {name for pattern in patterns for name in re.findall(pattern, SETTINGS_SOURCE)}


def test_the_settings_regex_finds_the_settings() -> None:
    found = settings_the_code_reads()
    # A sample of settings read in each style: if the code's style changes, fix the regex above.
    assert {
        "SENSOR_STORAGE",
        "ARGO_TOKEN",
        "ARGO_CA_BUNDLE",
        "SUBMIT_BACKEND",
        "ARGO_INSECURE_SKIP_VERIFY",
        "ARGO_CONNECT_TIMEOUT",
        "ARGO_NAMESPACE",
        "SENSOR_EVENTS_QUEUE",
        "BLOB_TRIGGER_SOURCE",
        "COALESCE_SCHEDULE",
        "SENSOR_CLAIM_STALE_SECONDS",
    } <= found
    assert len(found) >= 27, sorted(found)


def test_every_setting_the_code_reads_is_set(app_settings: dict[str, Any]) -> None:
    # SENSOR_STORAGE itself would be a connection string: its identity-based form is checked below.
    missing = sorted(settings_the_code_reads() - {"SENSOR_STORAGE"} - set(app_settings))
    assert not missing, f"main.bicep's appsettings lack {missing}"


def test_every_setting_of_the_local_example_is_set(app_settings: dict[str, Any]) -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    host_managed = {"FUNCTIONS_WORKER_RUNTIME"}  # Flex Consumption: functionAppConfig.runtime instead
    connections = {"AzureWebJobsStorage", "SENSOR_STORAGE"}  # identity-based forms instead
    assert not sorted(set(example) - host_managed - connections - set(app_settings))
    assert not host_managed & set(app_settings), "Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME"


@pytest.mark.parametrize("connection", ["SENSOR_STORAGE", "AzureWebJobsStorage"])
def test_storage_connections_are_identity_based(app_settings: dict[str, Any], connection: str) -> None:
    assert connection not in app_settings  # no connection string
    for service in ("blob", "queue", "table"):
        assert (
            expr(app_settings[f"{connection}__{service}ServiceUri"]) == f"storage.properties.primaryEndpoints.{service}"
        )
    assert app_settings[f"{connection}__credential"] == "managedidentity"
    assert expr(app_settings[f"{connection}__clientId"]) == "appIdentity.properties.clientId"


def test_no_key_or_connection_string_anywhere(
    main: dict[str, Any], webhook: dict[str, Any], app_settings: dict[str, Any]
) -> None:
    text = json.dumps(app_settings)
    for word in (
        "AccountKey",
        "SharedAccessSignature",
        "DefaultEndpointsProtocol",
        "listKeys",
        "list_func",
        "listConnectionStrings",
        "primaryKey",
        "sas",
    ):
        assert word.lower() not in text.lower(), word
    # Nowhere in the templates is a storage key listed: the only listKeys is the host's blobs_extension key.
    for doc in (main, webhook):
        found = re.findall(r'"func_name": "(list\w*)", "resource_identifier": "([^"]*)"', json.dumps(doc))
        assert all(identifier.endswith("/host/default") for _, identifier in found), found
    storage = body(main["resources"]["storage"])["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False


def test_argo_token_is_a_key_vault_reference(main: dict[str, Any], app_settings: dict[str, Any]) -> None:
    assert app_settings["ARGO_TOKEN"] == "@Microsoft.KeyVault(SecretUri=${argoTokenSecret.properties.secretUri})"
    secret = main["resources"]["argoTokenSecret"]
    assert secret["type"] == "Microsoft.KeyVault/vaults/secrets"
    assert body(secret)["parent"] == "keyVault"
    assert body(secret)["properties"]["value"] == "argoToken"
    assert {"type": "secure"} in main["parameters"]["argoToken"]["decorators"]
    site = body(main["resources"]["functionApp"])
    assert expr(site["properties"]["keyVaultReferenceIdentity"]) == "appIdentity.id"
    vault = body(main["resources"]["keyVault"])["properties"]
    assert vault["enableRbacAuthorization"] is True


def test_literal_defaults_match_the_code(app_settings: dict[str, Any]) -> None:
    numbers = dict(re.findall(r'_number\(env, "(\w+)", ([0-9.]+)', SETTINGS_SOURCE))
    assert len(numbers) >= 10
    for name, value in numbers.items():
        assert float(app_settings[name]) == float(value), name
    assert app_settings["SUBMIT_BACKEND"] == "argo"
    # Application Insights is provisioned: the worker exports the app's OpenTelemetry (docs/telemetry.md).
    assert app_settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert app_settings["BLOB_TRIGGER_SOURCE"] == "EventGrid"  # Event Grid source: the webhook below
    assert app_settings["ARGO_INSECURE_SKIP_VERIFY"] == "false"
    schedule = re.search(r'DEFAULT_COALESCE_SCHEDULE = "([^"]+)"', SETTINGS_SOURCE)
    assert schedule and app_settings["COALESCE_SCHEDULE"] == schedule.group(1)
    assert app_settings["SUBMIT_MODE"] == "submitMode"
    assert expr(app_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == "appInsights.properties.ConnectionString"


def test_parameter_defaults_match_the_code(main: dict[str, Any]) -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    for param, setting in [
        ("chunkContainerName", "SENSOR_CONTAINER"),
        ("resultsContainerName", "SENSOR_RESULTS_CONTAINER"),
        ("eventsQueueName", "SENSOR_EVENTS_QUEUE"),
        ("ledgerTableName", "SENSOR_LEDGER_TABLE"),
        ("argoNamespace", "ARGO_NAMESPACE"),
        ("argoWorkflowTemplate", "ARGO_WORKFLOW_TEMPLATE"),
    ]:
        assert default(main, param) == example[setting], param
    modes = re.search(r"SUBMIT_MODES = \(([^)]*)\)", SETTINGS_SOURCE)
    assert modes
    allowed = next(d for d in main["parameters"]["submitMode"]["decorators"] if d["type"] == "allowed")
    assert sorted(allowed["argument"]) == sorted(re.findall(r'"(\w+)"', modes.group(1)))


# ------------------------------------------------------------------ storage and hosting


def test_storage_holds_the_containers_queue_and_table(main: dict[str, Any]) -> None:
    containers = {
        body(r)["name"] for r in of_type(main, "Microsoft.Storage/storageAccounts/blobServices/containers").values()
    }
    assert {"chunkContainerName", "resultsContainerName", "deadLetterContainerName"} <= containers
    assert default(main, "deadLetterContainerName") == "eventgrid-deadletter"
    queues = {body(r)["name"] for r in of_type(main, "Microsoft.Storage/storageAccounts/queueServices/queues").values()}
    assert queues == {"eventsQueueName", "${eventsQueueName}-poison"}
    tables = {body(r)["name"] for r in of_type(main, "Microsoft.Storage/storageAccounts/tableServices/tables").values()}
    assert tables == {"ledgerTableName"}


def test_flex_consumption_python_311_with_the_user_assigned_identity(main: dict[str, Any]) -> None:
    plan = body(main["resources"]["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = body(main["resources"]["functionApp"])
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert [k.strip("'") for k in site["identity"]["userAssignedIdentities"]] == ["${appIdentity.id}"]
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    auth = config["deployment"]["storage"]["authentication"]
    assert auth["type"] == "UserAssignedIdentity"
    assert expr(auth["userAssignedIdentityResourceId"]) == "appIdentity.id"
    assert site["properties"]["httpsOnly"] is True


# ------------------------------------------------------------------ role assignments


def assignments(main: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(scope, role GUID, principal) of every role assignment in main.bicep."""
    roles = main["variables"]["roles"]["value"]
    found = []
    for resource in of_type(main, "Microsoft.Authorization/roleAssignments").values():
        config = body(resource)
        definition = config["properties"]["roleDefinitionId"]["function"]
        assert definition["type"] == "subscription_resource_id"
        assert definition["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role = expr(definition["parameters"]["resource_name_1"]).removeprefix("roles.")
        assert config["properties"]["principalType"] == "ServicePrincipal"
        found.append((config["scope"], roles[role], expr(config["properties"]["principalId"])))
    return found


def test_role_guids_are_the_built_in_ones(main: dict[str, Any]) -> None:
    assert main["variables"]["roles"]["value"] == ROLE_GUIDS


@pytest.mark.parametrize(
    ("scope", "role"),
    [
        ("storage", "storageBlobDataOwner"),
        ("storage", "storageQueueDataContributor"),
        ("storage", "storageTableDataContributor"),
        ("keyVault", "keyVaultSecretsUser"),
        ("appInsights", "monitoringMetricsPublisher"),
    ],
)
def test_the_app_identity_has_its_roles(main: dict[str, Any], scope: str, role: str) -> None:
    assert (scope, ROLE_GUIDS[role], "appIdentity.properties.principalId") in assignments(main)


@pytest.mark.parametrize("role", ["storageQueueDataMessageSender", "storageBlobDataContributor"])
def test_event_grid_delivers_and_dead_letters_with_its_identity(main: dict[str, Any], role: str) -> None:
    assert ("storage", ROLE_GUIDS[role], "systemTopic.identity.principalId") in assignments(main)
    topic = body(main["resources"]["systemTopic"])
    assert topic["identity"] == {"type": "SystemAssigned"}
    assert expr(topic["properties"]["source"]) == "storage.id"
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"


def test_app_settings_wait_for_the_role_assignments(main: dict[str, Any]) -> None:
    (resource,) = of_type(main, "Microsoft.Web/sites/config").values()
    granted = {
        n
        for n, r in main["resources"].items()
        if r["type"] == "Microsoft.Authorization/roleAssignments"
        and expr(body(r)["properties"]["principalId"]) == "appIdentity.properties.principalId"
    }
    assert granted <= set(body(resource)["dependsOn"])


# ------------------------------------------------------------------ Event Grid


def check_filter(filter_: dict[str, Any]) -> None:
    assert filter_["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert filter_["subjectBeginsWith"] == "/blobServices/default/containers/${chunkContainerName}/"
    assert filter_["advancedFilters"] == [{"operatorType": "StringIn", "key": "data.api", "values": COMPLETED_APIS}]


def test_the_filter_is_the_same_in_both_files(main: dict[str, Any], webhook: dict[str, Any]) -> None:
    check_filter(main["variables"]["chunkEventFilter"]["value"])
    assert main["variables"]["chunkEventFilter"] == webhook["variables"]["chunkEventFilter"]


def test_the_completed_apis_match_the_queue_reader() -> None:
    source = (ROOT / "function_app" / "queue_messages.py").read_text()
    if "COMPLETED_APIS" not in source:
        pytest.skip("queue_messages.py no longer names COMPLETED_APIS")
    match = re.search(r"COMPLETED_APIS\b[^=\n]*=\s*(?:frozenset\()?[({\[]([^)}\]]*)", source)
    if match is None:  # defined elsewhere and imported
        pytest.skip("COMPLETED_APIS is not a literal in queue_messages.py")
    assert sorted(re.findall(r'"(\w+)"', match.group(1))) == sorted(COMPLETED_APIS)


def check_dead_letter(properties: dict[str, Any]) -> None:
    dead = properties["deadLetterWithResourceIdentity"]
    assert dead["identity"] == {"type": "SystemAssigned"}
    assert dead["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert expr(dead["deadLetterDestination"]["properties"]["resourceId"]) == "storage.id"
    assert dead["deadLetterDestination"]["properties"]["blobContainerName"] == "deadLetterContainerName"


def test_coalesce_mode_delivers_to_the_events_queue(main: dict[str, Any]) -> None:
    resource = main["resources"]["queueSubscription"]
    assert resource["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    assert condition(resource) == equals("submitMode", "coalesce")
    config = body(resource)
    assert config["parent"] == "systemTopic"
    properties = config["properties"]
    assert properties["filter"] == "chunkEventFilter"
    assert properties["eventDeliverySchema"] == "EventGridSchema"
    delivery = properties["deliveryWithResourceIdentity"]
    assert delivery["identity"] == {"type": "SystemAssigned"}
    assert delivery["destination"]["endpointType"] == "StorageQueue"
    queue = delivery["destination"]["properties"]
    assert queue["queueName"] == "eventsQueueName"
    assert expr(queue["resourceId"]) == "storage.id"
    assert number(queue["queueMessageTimeToLiveInSeconds"]) == -1  # never expire: a chunk event must not be lost
    check_dead_letter(properties)


def test_immediate_mode_delivers_to_the_blob_trigger_webhook(main: dict[str, Any], webhook: dict[str, Any]) -> None:
    module = main["modules"]["webhookSubscription"]
    assert module["detail"]["path"] == "app/webhook-subscription.bicep"
    assert condition(module) == {
        "operator": {
            "type": "and",
            "operands": {"operand_1": equals("submitMode", "immediate"), "operand_2": "functionCodeDeployed"},
        }
    }
    params = body(module)["params"]
    assert params["subscriptionName"] == "chunkSubscriptionName"  # same name as the queue variant
    assert body(main["resources"]["queueSubscription"])["name"] == "chunkSubscriptionName"
    assert params["chunkContainerName"] == "chunkContainerName"
    assert params["deadLetterContainerName"] == "deadLetterContainerName"
    assert set(params) <= set(webhook["parameters"])
    assert {p for p, d in webhook["parameters"].items() if d["default"] is None} <= set(params)

    (resource,) = of_type(webhook, "Microsoft.EventGrid/systemTopics/eventSubscriptions").values()
    properties = body(resource)["properties"]
    assert properties["filter"] == "chunkEventFilter"
    destination = properties["destination"]
    assert destination["endpointType"] == "WebHook"
    assert destination["properties"]["endpointUrl"] == (
        "https://${site.properties.defaultHostName}/runtime/webhooks/blobs"
        "?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}"
    )
    blueprint = (ROOT / "function_app" / "blueprint.py").read_text()
    assert f'@bp.function_name("{default(webhook, "functionName")}")' in blueprint
    key = webhook["variables"]["blobsExtensionKey"]["value"]["operator"]["operands"]
    assert key["operand_1"]["function"]["parameters"]["func_name"] == "listKeys"
    assert key["operand_1"]["function"]["parameters"]["resource_identifier"] == "${site.id}/host/default"
    assert expr(key["operand_2"]) == "systemKeys.blobs_extension"
    check_dead_letter(properties)


# ------------------------------------------------------------------ parameters and azd


def test_parameters_file_matches_the_template(main: dict[str, Any]) -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = main["parameters"]
    assert set(values) <= set(declared)
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(values)
    assert {"argoServerUrl", "argoToken", "submitMode"} <= set(values)
    # The secret comes from the azd environment, never a literal in the file.
    assert values["argoToken"]["value"] == "${ARGO_TOKEN}"


def test_azure_yaml_deploys_this_directory_as_the_function_app() -> None:
    yaml = pytest.importorskip("yaml")
    azure = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert azure["services"] == {"function-app": {"project": ".", "language": "python", "host": "function"}}
    assert azure["infra"]["path"] == "infra"
    hook = azure["hooks"]["postdeploy"]["posix"]["run"]
    assert (ROOT / hook).is_file()


def test_the_app_carries_the_azd_service_tag(main: dict[str, Any]) -> None:
    tags = body(main["resources"]["functionApp"])["tags"]
    assert "function-app" in json.dumps(tags)
