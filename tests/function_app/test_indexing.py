"""The app as the Functions worker sees it: indexing replayed in a fresh interpreter, light imports,
the files the Functions build would deploy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pathspec
import pytest

from function_app.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
REPLAY = Path(__file__).with_name("worker_replay.py")

EXPECTED_BLOB = {
    "scriptFile": "function_app.py",
    "bindings": [
        {
            "direction": "IN",
            "type": "blobTrigger",
            "name": "client",
            "path": "%SENSOR_CONTAINER%/{name}",
            "connection": "SENSOR_STORAGE",
            "source": "EventGrid",
        }
    ],
}
EXPECTED_HTTP = {
    "scriptFile": "function_app.py",
    "bindings": [
        {
            "direction": "IN",
            "type": "httpTrigger",
            "name": "req",
            "methods": ["POST"],
            "authLevel": "FUNCTION",
            "route": "trigger",
        },
        {"direction": "OUT", "type": "http", "name": "$return"},
    ],
}


def replay(root: Path, **env: str) -> tuple[dict[str, Any], str]:
    """Index the app at ``root`` like the worker, with NO app settings but ``env``."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    proc = subprocess.run(
        [sys.executable, str(REPLAY), str(root)], capture_output=True, text=True, env=clean, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout), proc.stderr


def test_worker_indexes_both_functions_without_any_setting() -> None:
    result, _ = replay(ROOT)
    assert result["module_file"] == "function_app.py"  # not shadowed by the function_app/ folder
    assert result["registers"] == ["app"]
    assert set(result["functions"]) == {"chunk_blob_trigger", "manual_trigger", "chunk_status", "coalesce_drainer"}
    assert result["functions"]["chunk_blob_trigger"]["json"] == EXPECTED_BLOB
    assert result["functions"]["manual_trigger"]["json"] == EXPECTED_HTTP
    # The blob arrives as an SDK-type reference (BlobClient), never as content.
    assert result["functions"]["chunk_blob_trigger"]["sdk_types"] == {
        "client": "azurefunctions.extensions.bindings.blob.blobClient.BlobClient"
    }


def test_the_drainer_is_a_timer_on_the_coalesce_schedule() -> None:
    result, _ = replay(ROOT)
    (binding,) = result["functions"]["coalesce_drainer"]["json"]["bindings"]
    assert binding["type"] == "timerTrigger" and binding["direction"] == "IN"
    assert binding["schedule"] == "*/30 * * * * *" and binding["useMonitor"] is True
    assert binding.get("runOnStartup") is False


def test_a_bad_coalesce_schedule_falls_back_without_breaking_indexing() -> None:
    result, stderr = replay(ROOT, COALESCE_SCHEDULE="every 30 seconds")
    assert "manual_trigger" in result["functions"]
    (binding,) = result["functions"]["coalesce_drainer"]["json"]["bindings"]
    assert binding["schedule"] == "*/30 * * * * *"
    assert "COALESCE_SCHEDULE" in stderr


def test_importing_the_app_pulls_in_neither_numpy_nor_metaflow() -> None:
    result, _ = replay(ROOT)
    assert result["heavy_modules"] == []
    assert result["local_backend_loaded"] is False


def test_polling_source_is_chosen_by_setting() -> None:
    result, _ = replay(ROOT, BLOB_TRIGGER_SOURCE="LogsAndContainerScan")
    assert result["functions"]["chunk_blob_trigger"]["json"]["bindings"][0]["source"] == "LogsAndContainerScan"


def test_an_invalid_source_does_not_break_indexing() -> None:
    result, stderr = replay(ROOT, BLOB_TRIGGER_SOURCE="Polling")
    assert set(result["functions"]) == {
        "chunk_blob_trigger",
        "manual_trigger",
        "chunk_status",
        "coalesce_drainer",
    }  # the HTTP trigger survives
    assert result["functions"]["chunk_blob_trigger"]["json"]["bindings"][0]["source"] == "EventGrid"
    assert "BLOB_TRIGGER_SOURCE" in stderr and "Polling" in stderr


def test_no_package_init_shadows_the_entry_point() -> None:
    assert not (ROOT / "function_app" / "__init__.py").exists(), (
        "function_app/__init__.py would shadow function_app.py: the worker imports by module name"
    )


def deploy_set(root: Path) -> list[Path]:
    """The files the Functions build would upload: everything not matched by .funcignore."""
    spec = pathspec.GitIgnoreSpec.from_lines((root / ".funcignore").read_text().splitlines())
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/")]
        files += [rel_dir / f for f in filenames if not spec.match_file((rel_dir / f).as_posix())]
    return sorted(files)


def test_funcignore_deploys_the_app_and_nothing_else(tmp_path: Path) -> None:
    files = deploy_set(ROOT)
    names = {f.as_posix() for f in files}
    assert {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "chunk_contract/__init__.py",
        "chunk_contract/names.py",
        "chunk_contract/versions.py",
        "chunk_contract/naming.py",
        "chunk_contract/records.py",
    } <= names
    assert {f"function_app/{p.name}" for p in (ROOT / "function_app").glob("*.py")} <= names
    for excluded in (
        "tests/",
        "localdev/",
        "sensorctl/",
        "benchmarks/",
        "flows/",
        "processing/",
        "docs/",
        "node_modules/",
        ".venv/",
        ".git/",
    ):
        assert not any(n.startswith(excluded) for n in names), excluded
    assert "local.settings.json" not in names and "local.settings.example.json" not in names
    # The deployed tree alone indexes: nothing the app imports was left out.
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tmp_path / rel)
    result, _ = replay(tmp_path)
    assert set(result["functions"]) == {"chunk_blob_trigger", "manual_trigger", "chunk_status", "coalesce_drainer"}


def test_host_json() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["extensions"]["blobs"]["poisonBlobThreshold"] >= 1
    assert host["extensions"]["http"]["routePrefix"] == "api"


def test_local_settings_example_names_every_setting_and_is_valid() -> None:
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["SENSOR_STORAGE"] == values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    # Every environment variable the settings module reads appears in the example.
    import re

    source = (ROOT / "function_app" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.get)?\(\s*"([A-Z_]+)"|_(?:number|choice|flag)\(env, "([A-Z_]+)"', source))
    names = {a or b for a, b in read}
    assert names, "the settings module reads no setting?"
    missing = names - set(values)
    assert not missing, f"missing from local.settings.example.json: {sorted(missing)}"
    # Polling: Azurite has no Event Grid.
    assert values["BLOB_TRIGGER_SOURCE"] == "LogsAndContainerScan"
    load_settings(values)  # valid as written


@pytest.mark.parametrize("name", ["requirements.txt"])
def test_runtime_requirements_are_pinned_and_light(name: str) -> None:
    lines = [
        line.strip() for line in (ROOT / name).read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in lines), lines
    packages = {line.split("==")[0].lower() for line in lines}
    assert {
        "azure-functions",
        "azurefunctions-extensions-bindings-blob",
        "azure-storage-blob",
        "requests",
        "tenacity",
    } <= packages
    assert not packages & {"numpy", "metaflow", "scipy"}
