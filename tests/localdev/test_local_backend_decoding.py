"""The local backend decodes submit parameters exactly as Metaflow's Argo start pod does.

The reference is Metaflow's own code path, run for real: ``metaflow.plugins.argo.set_parameters``
writes the ``export METAFLOW_INIT_*`` file, *bash* sources it, and Metaflow's ``JSONType`` parses the
resulting environment variable. The local backend's pure decoder must agree with that on every
character the chunk-name allow-list lets through.
"""

from __future__ import annotations

import base64
import json
import string
import subprocess
from pathlib import Path

import pytest
from metaflow.parameters import JSONTypeClass
from metaflow.plugins.argo.set_parameters import export_parameters

from function_app.local_backend import ParameterDecodeError, decode_parameters
from function_app.settings import Settings
from function_app.submission import Submission, decide
from processing.chunk_names import validate_chunk_name

ALLOWED = string.ascii_letters + string.digits + "/._=-"
NAMES = [
    validate_chunk_name(n)
    for n in (
        "sensor-001/2026/11/22/080000.csv",
        "a=b/c=d=e/x.y-z_w.npy",  # '=' inside a value: Argo splits "NAME=VALUE" at the first '=' only
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ/abcdefghijklmnopqrstuvwxyz/0123456789/._-=",
        "-leading-dash/_under/.hidden",
        "x" * 1000,
    )
]


def _submission(names: list[str], container: str = "sensor-data") -> Submission:
    decision = decide(
        trigger="blob",
        container=container,
        chunks=names,
        etags=[f'"0x8D{i:04X}"' for i in range(len(names))],
        force=False,
        settings=Settings(sensor_storage="UseDevelopmentStorage=true", max_chunks_per_request=1000),
        request_id="req-1",
    )
    assert isinstance(decision, Submission), decision
    return decision


def _as_the_pod_sees_it(parameters: list[str], tmp_path: Path) -> dict[str, str]:
    """Run Metaflow's set_parameters + bash `.` on the values, return the METAFLOW_INIT_* variables."""
    params = {}
    for entry in parameters:
        name, value = entry.split("=", 1)
        params[name] = (base64.b64encode(value.encode()).decode(), False)
    exports = tmp_path / "params"
    export_parameters(str(exports), params)  # type: ignore[arg-type]  # its hint says str; it takes (value, flag)
    dump = 'import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("METAFLOW_INIT_")}))'
    out = subprocess.run(
        ["bash", "-c", f". \"{exports}\" && exec python3 -c '{dump}'"], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def test_every_allowed_character_is_in_the_fixture() -> None:
    assert set("".join(NAMES)) == set(ALLOWED)


def test_decoding_matches_metaflow_and_bash_for_every_allowed_character(tmp_path: Path) -> None:
    submission = _submission(NAMES)
    parameters = submission.body["submitOptions"]["parameters"]
    ours = decode_parameters(parameters)
    pod_env = _as_the_pod_sees_it(parameters, tmp_path)
    theirs = {
        "chunks": JSONTypeClass().convert(pod_env["METAFLOW_INIT_CHUNKS"], None, None),
        "container": pod_env["METAFLOW_INIT_CONTAINER"],
    }
    assert ours == theirs
    assert ours == {"chunks": sorted(NAMES), "container": "sensor-data"}


def test_a_list_encoded_only_once_is_refused_with_the_rule() -> None:
    # json.dumps(list) once: the pod's bash would word-split the unquoted export.
    with pytest.raises(ParameterDecodeError, match=r"'chunks'.*must be a JSON string"):
        decode_parameters(["chunks=" + json.dumps(["a.csv", "b.csv"]), 'container="sensor-data"'])


def test_shell_expansion_characters_are_refused() -> None:
    with pytest.raises(ParameterDecodeError, match=r"'\$' or '`'"):
        decode_parameters(["chunks=" + json.dumps(json.dumps(["raw/$HOME/x.csv"]))])


def test_entry_without_equals_and_repeated_names_are_refused() -> None:
    with pytest.raises(ParameterDecodeError, match="NAME=VALUE"):
        decode_parameters(["chunks"])
    with pytest.raises(ParameterDecodeError, match="given twice"):
        decode_parameters(['container="a"', 'container="b"'])


def test_unknown_parameters_are_dropped_like_argo_does() -> None:
    assert decode_parameters(['container="c1"', 'colour="blue"']) == {"container": "c1"}


def test_plain_unquoted_string_falls_back_like_set_parameters() -> None:
    # set_parameters falls back to the raw text when it is not JSON.
    assert decode_parameters(["container=sensor-data"]) == {"container": "sensor-data"}
