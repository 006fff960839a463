"""The flow through Metaflow's local runtime on Azurite, side by side with the CLI: memory, wall, artifacts.

``python -m benchmarks.bench_flow`` (``make bench-flow``), on a fresh Azurite:

1. one chunk of each ``--sizes`` (default 1M, 10M and 100M samples, ``.npy``; written once under
   ``--dir``) is uploaded and processed by one event run of ``SensorProcessingFlow``. Per task
   process (each step is one), the peak RSS (``VmHWM``, sampled every 50 ms) and the wall time;
   the bytes of artifacts the run stored, and of its card. Side by side: one download of the same
   blob from the same Azurite (the SDK's streamed download, as the flow does) plus
   ``python -m processing`` on the downloaded file (its peak RSS too), and a check that the flow's
   result equals the CLI's;
2. batches of ``--batches`` (default 1, 10, 100, 200) small chunks (a minute at 50 Hz, CSV): one
   event run each; wall per chunk and the largest task;
3. ``--options``: the branch-input designs of docs/flow.md, measured on the largest chunk: one
   streaming pass with every accumulator (what ``preprocess`` does) against passes with only the
   resampler and envelope, resampler + Welch, resampler + lags (what re-streaming branches would
   each redo after their own download).

Targets (issue 10): every task <= 300 MiB at every size; flow wall on the 100M chunk <= 2x (one
download + the CLI); artifacts per run independent of chunk size (<= 5 MB plus the card); per-chunk
cost of a 100-chunk batch <= 0.2 s. Results go to stdout and ``--dir``/flow.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FLOW = REPO / "flows" / "sensor_processing_flow.py"
MIB = 2**20
SAMPLE_EVERY = 0.05

__all__ = ["main"]


def _hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _step_of(cmdline: list[str]) -> str | None:
    # Metaflow's local runtime starts each task as `python FLOW ... step <name> --run-id ...`.
    for i, word in enumerate(cmdline[:-1]):
        if word == "step" and any(part.endswith(".py") for part in cmdline[:i]):
            return cmdline[i + 1]
    return None


@dataclass
class _Proc:
    label: str
    first: float
    last: float
    hwm: int = 0


@dataclass
class Sampler:
    """Peak RSS and lifetime of every process under ``root`` (recursively), labelled by step."""

    root: int
    procs: dict[int, _Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import psutil

        try:
            top = psutil.Process(self.root)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                kids = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in kids:
                try:
                    hwm = _hwm(p.pid)
                    if hwm is None:
                        continue
                    entry = self.procs.get(p.pid)
                    if entry is None:
                        entry = self.procs[p.pid] = _Proc("", now, now)
                    if entry.label not in STEPS:
                        # Seen between fork and exec, a task still has its parent's command line: look again.
                        entry.label = _step_of(p.cmdline()) or ("runtime" if p.pid == self.root else p.name())
                    entry.last = now
                    entry.hwm = max(entry.hwm, hwm)
                except psutil.Error:
                    continue
            time.sleep(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop.set()

    def by_label(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for p in self.procs.values():
            row = out.setdefault(p.label, {"peak_mib": 0.0, "wall_s": 0.0})
            row["peak_mib"] = max(row["peak_mib"], p.hwm / MIB)
            row["wall_s"] = max(row["wall_s"], p.last - p.first)
        return out


def _sampled(
    command: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, subprocess.CompletedProcess[str], Sampler]:
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.stop()
    thread.join()
    return wall, subprocess.CompletedProcess(command, proc.returncode, out, err), sampler


def _tree_bytes(root: Path, *, cards: bool) -> int:
    total = 0
    for path in root.rglob("*"):
        # A local run keeps its card (and the card's runtime data) under the end task's cards/ and runtime/.
        is_card = "cards" in path.parts or "runtime" in path.parts or "mf.cards" in path.parts
        if path.is_file() and is_card == cards:
            total += path.stat().st_size
    return total


@dataclass
class Rig:
    connection_string: str
    container: str
    results: str
    workdir: Path

    def flow_env(self, datastore: Path) -> dict[str, str]:
        return {
            **os.environ,
            "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(datastore),
            "METAFLOW_CARD_LOCALROOT": str(datastore / ".metaflow" / "mf.cards"),
            "METAFLOW_HOME": str(self.workdir / "mfhome"),
            "USERNAME": "bench",
            "METAFLOW_USER": "bench",
            "SENSOR_STORAGE": self.connection_string,
            "SENSOR_RESULTS_CONTAINER": self.results,
            "SENSOR_LEDGER_TABLE": "benchledger",
            "OPENBLAS_NUM_THREADS": "1",
        }

    def run_flow(self, label: str, names: list[str]) -> dict[str, Any]:
        datastore = self.workdir / f"ds-{label}"
        command = [
            sys.executable,
            str(FLOW),
            "run",
            "--chunks",
            json.dumps(names),
            "--container",
            self.container,
            "--force",
            "true",
        ]
        wall, done, sampler = _sampled(command, self.flow_env(datastore), REPO)
        if os.environ.get("BENCH_FLOW_KEEP"):
            print(f"    datastore kept: {datastore}")
        if done.returncode:
            raise RuntimeError(f"flow run {label} failed:\n{done.stderr[-3000:]}")
        steps = {k: v for k, v in sampler.by_label().items() if k in STEPS}
        return {
            "wall_s": wall,
            "steps": steps,
            "largest_task_mib": max(v["peak_mib"] for v in steps.values()),
            "artifact_bytes": _tree_bytes(datastore, cards=False),
            "card_bytes": _tree_bytes(datastore, cards=True),
        }


STEPS = ("start", "preprocess", "filter_bank", "lags", "join", "end")


def _cli(path: Path, name: str) -> tuple[float, float, dict[str, Any]]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    wall, done, sampler = _sampled(
        [sys.executable, "-m", "processing", str(path), "--chunk-name", name], env=env, cwd=REPO
    )
    if done.returncode:
        raise RuntimeError(f"CLI failed: {done.stderr[-2000:]}")
    peak = max(p.hwm for p in sampler.procs.values()) / MIB
    return wall, peak, json.loads(done.stdout)


def _close(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(b, dict):
        if not isinstance(a, dict) or a.keys() != b.keys():
            return [f"{where}: keys differ"]
        return [p for k in b for p in _close(a[k], b[k], f"{where}.{k}")]
    if isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            return [f"{where}: lengths differ"]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _close(x, y, f"{where}[{i}]")]
    if isinstance(b, float):
        return [] if abs(a - b) <= 1e-9 * abs(b) + 1e-12 else [f"{where}: {a!r} != {b!r}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _small_csv(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = 3000  # a minute at 50 Hz
    t = 1_764_000_000.0 + 60.0 * seed + np.cumsum((1.0 + rng.uniform(-0.3, 0.3, n)) / 50.0)
    x = np.sin(2 * np.pi * 2.0 * t) + rng.normal(size=n)
    return ("timestamp,value\n" + "".join(f"{a:.4f},{b:.5f}\n" for a, b in zip(t, x, strict=True))).encode()


def _options(path: Path) -> dict[str, float]:
    """Seconds of one streaming pass over ``path`` with each set of consumers (in a child process)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_flow", "--child-options", str(path)],
        cwd=REPO,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _child_options(path: str) -> None:
    from processing import features as f
    from processing.acf import LagAccumulator, single_threaded_blas
    from processing.allocator import keep_freed_memory
    from processing.envelope import EnvelopeAccumulator
    from processing.welch import WelchAccumulator

    keep_freed_memory()
    s = f.DEFAULT_SETTINGS

    def timed(make: Any) -> float:
        start = time.perf_counter()
        with single_threaded_blas():
            f._run(path, s, None, make)
        return time.perf_counter() - start

    def consumers(*accs: Any) -> Any:
        def feed(block: np.ndarray) -> None:
            for acc in accs:
                acc.feed(block)

        return feed

    result = {
        "all_accumulators": timed(lambda: f._Streaming(s, 1000)),
        "resample_envelope": timed(lambda: consumers(EnvelopeAccumulator(1000))),
        "resample_welch": timed(lambda: consumers(WelchAccumulator(s.fs, s.nperseg))),
        "resample_lags": timed(lambda: consumers(LagAccumulator(s.max_lag))),
    }
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_flow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 10, 100, 200])
    parser.add_argument("--dir", type=Path, default=Path(".bench"))
    parser.add_argument("--options", action="store_true", help="also measure the branch-input designs (largest size)")
    parser.add_argument("--child-options", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_options:
        _child_options(args.child_options)
        return 0

    from azure.storage.blob import BlobServiceClient

    from benchmarks.bench_processing import _ensure
    from localdev.azurite import Azurite

    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    report: dict[str, Any] = {"sizes": {}, "batches": {}}
    failed = False
    with Azurite() as azurite, tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        container = service.create_container("bench-chunks")
        rig = Rig(azurite.connection_string, "bench-chunks", "bench-features", Path(tmp))
        for n in args.sizes:
            path = _ensure(args.dir, n)
            name = f"bench-sensor/big-{n}.npy"
            with open(path, "rb") as data:
                container.get_blob_client(name).upload_blob(data, overwrite=True, max_concurrency=4)
            flow = rig.run_flow(f"size-{n}", [name])
            local = Path(tmp) / f"download-{n}.npy"
            start = time.perf_counter()
            with open(local, "wb") as out:
                service.get_blob_client("bench-chunks", name).download_blob().readinto(out)
            download_s = time.perf_counter() - start
            cli_s, cli_mib, record = _cli(local, name)
            local.unlink()
            result_name = name + ".features.json"
            flow_record = json.loads(service.get_blob_client("bench-features", result_name).download_blob().readall())
            problems = _close(flow_record, record)
            failed = failed or bool(problems)
            row = {
                **flow,
                "download_s": download_s,
                "cli_s": cli_s,
                "cli_peak_mib": cli_mib,
                "ratio_to_download_plus_cli": flow["wall_s"] / (download_s + cli_s),
                "result_equals_cli": not problems,
            }
            report["sizes"][n] = row
            steps = "  ".join(f"{k} {v['peak_mib']:.0f} MiB/{v['wall_s']:.1f} s" for k, v in flow["steps"].items())
            print(
                f"{n:>11,} samples: flow {flow['wall_s']:.1f} s, largest task {flow['largest_task_mib']:.0f} MiB,"
                f" artifacts {flow['artifact_bytes'] / 1e6:.2f} MB + card {flow['card_bytes'] / 1e6:.2f} MB;"
                f" download {download_s:.1f} s + CLI {cli_s:.1f} s ({cli_mib:.0f} MiB):"
                f" ratio {row['ratio_to_download_plus_cli']:.2f}x; result {'= CLI' if not problems else 'DIFFERS'}\n    {steps}",
                flush=True,
            )
            if args.options and n == max(args.sizes):
                parts = _options(path)
                report["options"] = {**parts, "download_s": download_s}
                one_pass = download_s + parts["all_accumulators"]
                restream = (
                    download_s
                    + parts["resample_envelope"]
                    + download_s
                    + max(parts["resample_welch"], parts["resample_lags"])
                )
                print(
                    f"    branch input, measured parts: download {download_s:.1f} s; passes: all accumulators"
                    f" {parts['all_accumulators']:.1f} s, resample+envelope {parts['resample_envelope']:.1f} s,"
                    f" resample+Welch {parts['resample_welch']:.1f} s, resample+lags {parts['resample_lags']:.1f} s"
                    f"\n    -> one pass in preprocess: {one_pass:.1f} s of work on the critical path;"
                    f" re-streaming branches (pinned to the ETag): {restream:.1f} s (3 downloads)",
                    flush=True,
                )
            container.delete_blob(name)
        for size in args.batches:
            names = [f"bench-batch-{size}/s{i % 20:02d}/{i:04d}.csv" for i in range(size)]
            for i, name in enumerate(names):
                container.get_blob_client(name).upload_blob(_small_csv(i), overwrite=True)
            flow = rig.run_flow(f"batch-{size}", names)
            flow["per_chunk_s"] = flow["wall_s"] / size
            report["batches"][size] = flow
            print(
                f"batch of {size:>3} chunks: flow {flow['wall_s']:.1f} s = {flow['per_chunk_s']:.3f} s per chunk,"
                f" largest task {flow['largest_task_mib']:.0f} MiB, artifacts {flow['artifact_bytes'] / 1e6:.2f} MB"
                f" + card {flow['card_bytes'] / 1e6:.2f} MB\n    "
                + "  ".join(f"{k} {v['peak_mib']:.0f} MiB/{v['wall_s']:.1f} s" for k, v in flow["steps"].items()),
                flush=True,
            )
    largest = max(
        [r["largest_task_mib"] for r in report["sizes"].values()]
        + [r["largest_task_mib"] for r in report["batches"].values()]
    )
    print(f"largest task of all runs: {largest:.0f} MiB (target <= 300)")
    (args.dir / "flow.json").write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
