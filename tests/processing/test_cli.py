"""``python -m processing``: JSON on stdout, exit 2 with one stderr line on bad input, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from processing.cli import main
from processing.features import ProcessingSettings, extract_features
from tests.processing.helpers import irregular

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chunk(tmp_path: Path) -> Path:
    t, v = irregular(4_000, seed=9)
    path = tmp_path / "chunk-1.npy"
    np.save(path, np.column_stack((t, v)))
    return path


def test_prints_the_record_as_json(chunk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                str(chunk),
                "--fs",
                "50",
                "--nperseg",
                "256",
                "--bands",
                "4",
                "--max-lag",
                "10",
                "--max-gap",
                "0.5",
                "--chunk-name",
                "sensor-1/chunk-1.npy",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    record = json.loads(out.out)
    s = ProcessingSettings(fs=50.0, nperseg=256, n_bands=4, max_lag=10, max_gap=0.5)
    assert record == json.loads(json.dumps(extract_features(chunk, "sensor-1/chunk-1.npy", s)))
    assert record["sensor_id"] == "sensor-1" and out.err == ""


def test_default_chunk_name_is_the_base_name(chunk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(chunk), "--threads", "2"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["chunk_name"] == record["sensor_id"] == "chunk-1.npy"
    assert record["settings"] == ProcessingSettings().as_dict()


def bad(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        sys.exit(main(argv))
    assert info.value.code == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    return lines[0]


def test_bad_csv_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.csv"
    path.write_text("timestamp,value\n1,2\n2,two\n")
    assert bad([str(path)], capsys) == f"python -m processing: error: {path}: line 3: value 'two' is not a number"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fs", "0"], "fs must be a finite number > 0"),
        (["--nperseg", "4"], "nperseg must be an integer >= 8"),
        (["--bands", "0"], "n_bands must be an integer >= 1"),
        (["--max-lag", "0"], "max_lag must be an integer >= 1"),
        (["--max-gap", "-1"], "max_gap must be a finite number > 0"),
        (["--fs", "fast"], "argument --fs: invalid float value"),
        (["--max-lag", "100000"], "max_lag=100000 must be smaller than the"),
        (["--nperseg", "100000"], "fewer than nperseg=100000"),
        (["--chunk-name", "a b"], "invalid chunk name"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    chunk: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in bad([str(chunk), *argv], capsys)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "nope.npy: cannot open" in bad([str(tmp_path / "nope.npy")], capsys)


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "CHUNK_FILE",
        "--fs",
        "--nperseg",
        "--bands",
        "--max-lag",
        "--max-gap",
        "--threads",
        "--chunk-name",
        "Exit status",
    ):
        assert option in text


def test_python_dash_m_processing_end_to_end(chunk: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "processing", str(chunk), "--nperseg", "256"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["n_raw"] == 4_000
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)))
    failed = subprocess.run(
        [sys.executable, "-m", "processing", str(garbage)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and str(garbage) in failed.stderr


def test_threads_default_follows_the_cpus_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from processing import cli

    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cli.default_threads() == 2
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0})
    assert cli.default_threads() == 1
