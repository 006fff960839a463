"""The local backend decodes submit parameters exactly as Metaflow's Argo start pod does.

The reference is Metaflow's own code path, run for real: ``metaflow.plugins.argo.set_parameters``
writes the ``export METAFLOW_INIT_*`` file, *bash* sources it, and the flow's parameters are read
from the resulting environment variables by a click option built the way Metaflow's ``init``
command builds it (``parameters.add_custom_parameters``: ``JSONType`` for ``chunks``, the vendored
click's ``BOOL`` for ``force``). The local backend's pure decoder must agree with that on every
character the chunk-name allow-list (``chunk_contract.names.validate_chunk_name`` itself) lets
through, and on every spelling of a bool, accepting exactly what the pod accepts.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from metaflow import JSONType

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from function_app.settings import Settings
from function_app.submission import Submission, decide
from localdev.local_backend import PARAMETER_TYPES, ParameterDecodeError, decode_parameters
from tests.flows.pod_decoding import PodDecodeFailed, flow_parameters, pod_values, source_exports


@functools.cache
def allowed_characters() -> frozenset[str]:
    """Every character the real allow-list accepts inside a name (all of Unicode is tried, ~2 s)."""
    allowed = set()
    for code in range(0x110000):
        try:
            validate_chunk_name(f"a{chr(code)}a")
        except InvalidChunkName:
            continue
        allowed.add(chr(code))
    return frozenset(allowed)


def every_allowed_character_name() -> str:
    """One valid name holding every allowed character ('/' between segments, no '..')."""
    chars = sorted(allowed_characters() - {"/"})
    segments = ["x" + "x".join(chars[i : i + 16]) + "x" for i in range(0, len(chars), 16)]
    return validate_chunk_name("/".join(segments))


FIXED_NAMES = [
    validate_chunk_name(n)
    for n in (
        "sensor-001/2026/11/22/080000.csv",
        "a=b/c=d=e/x.y-z_w.npy",  # '=' inside a value: Argo splits "NAME=VALUE" at the first '=' only
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ/abcdefghijklmnopqrstuvwxyz/0123456789/._-=",
        "-leading-dash/_under/.hidden",
        "x" * 1000,
    )
]


def _submission(names: list[str], container: str = "sensor-data", force: bool = False) -> Submission:
    decision = decide(
        trigger="blob",
        container=container,
        chunks=names,
        etags=[f'"0x8D{i:04X}"' for i in range(len(names))],
        force=force,
        settings=Settings(sensor_storage="UseDevelopmentStorage=true", max_chunks_per_request=1000),
        request_id="req-1",
    )
    assert isinstance(decision, Submission), decision
    return decision


def test_the_types_are_the_flows() -> None:
    # Named as metaflow/plugins/argo/argo_workflows.py (_process_parameters) names them.
    kinds = {}
    for name, p in flow_parameters().items():
        kind: Any = p.kwargs["type"]
        kinds[name] = kind.name if kind == JSONType else kind.__name__
    assert kinds == PARAMETER_TYPES  # the compile test checks the same against the real template


def test_every_allowed_character_is_in_the_fixture() -> None:
    allowed = allowed_characters()
    assert {"a", "Z", "0", "/", "-"} <= allowed and "$" not in allowed and "`" not in allowed
    assert set(every_allowed_character_name()) == allowed
    # The hand-written names use only allowed characters (each passed validate_chunk_name above).
    assert set("".join(FIXED_NAMES)) <= allowed


@pytest.mark.parametrize("force", [False, True])
def test_decoding_matches_metaflow_and_bash_for_every_allowed_character(tmp_path: Path, force: bool) -> None:
    names = [*FIXED_NAMES, every_allowed_character_name()]
    submission = _submission(names, force=force)
    parameters = submission.body["submitOptions"]["parameters"]
    ours = decode_parameters(parameters)
    assert ours == pod_values(parameters, tmp_path)
    assert ours == {"chunks": sorted(names), "container": "sensor-data", "force": force}
    assert type(ours["force"]) is bool


# Spellings of a bool parameter's value in "force=VALUE". Metaflow's own trigger sends json.dumps(True),
# i.e. `true`/`false`; the rest shows that the decoder accepts what the pod accepts, and only that.
BOOL_SPELLINGS = [
    "true",
    "false",
    '"true"',
    '"false"',
    "True",
    "FALSE",
    '"Yes"',
    "y",
    "N",
    "t",
    "f",
    "1",
    "0",
    "-0",
    " true",  # JSON allows the space: still the literal true
    '" true"',  # a string with a space: click does not strip
    "1.0",
    "2",
    "null",
    '""',
    "",
    "on",
    "maybe",
    "[true]",
    "{}",
    '"tr\\u0075e"',  # JSON escape of "true": json.loads undoes it before bash sees anything
    '"t\\u00e9"',
    "$(true)",
    '"`true`"',
]


@pytest.mark.parametrize("raw", BOOL_SPELLINGS)
def test_a_bool_is_decoded_exactly_as_the_pod_decodes_it(tmp_path: Path, raw: str) -> None:
    entry = "force=" + raw
    try:
        theirs: Any = pod_values([entry], tmp_path)["force"]
    except PodDecodeFailed as exc:
        theirs = exc
    if isinstance(theirs, PodDecodeFailed):
        with pytest.raises(ParameterDecodeError, match="'force'"):
            decode_parameters([entry])
    else:
        assert decode_parameters([entry]) == {"force": theirs}


def test_metaflow_s_own_encoding_of_a_bool_is_a_bare_json_literal() -> None:
    # metaflow/plugins/argo/argo_client.py, trigger_workflow_template: {"value": json.dumps(v)}
    # with v the click-converted bool; the template default is json.dumps(False).
    assert _submission(["a.csv"], force=True).parameters["force"] == json.dumps(True) == "true"
    assert _submission(["a.csv"], force=False).parameters["force"] == json.dumps(False) == "false"
    assert decode_parameters(["force=true"]) == {"force": True}
    assert decode_parameters(["force=false"]) == {"force": False}


def test_a_bool_that_click_would_refuse_names_the_rule() -> None:
    with pytest.raises(ParameterDecodeError, match=r"'force' is a bool: the start pod's click would refuse 'null'"):
        decode_parameters(["force=null"])
    with pytest.raises(ParameterDecodeError, match=r"'force'.*word-split or glob-expanded"):
        decode_parameters(["force=[true]"])


def test_a_str_value_that_bash_would_not_unescape_is_refused(tmp_path: Path) -> None:
    entry = "container=" + json.dumps("sensor-d\u00e4ta")
    pod_env = source_exports([entry], tmp_path)
    assert pod_env["METAFLOW_INIT_CONTAINER"] == "sensor-d\\u00e4ta"  # mangled in the pod
    with pytest.raises(ParameterDecodeError, match=r"would reach the flow as"):
        decode_parameters([entry])


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
