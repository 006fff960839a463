"""Throughput and peak memory of the processing pipeline against a straightforward reference.

``python -m benchmarks.bench_processing`` (``make bench``):

1. writes a synthetic irregular chunk (``--samples``, default 20 million rows) as ``.npy`` under
   ``--dir`` (default ``.bench/``), block by block, and reuses it on later runs;
2. in one child process per thread count (``--threads``, default ``1 2``), runs on that file
   the reference (``np.load`` + ``np.interp`` + ``scipy.signal.welch`` + one ``np.dot`` per lag;
   BLAS threads and ``scipy.fft`` workers set to the thread count) and the project's
   :func:`processing.features.extract_features` (``threads=`` the thread count), checks that the records agree
   within the issue's tolerances, and prints both throughputs (raw samples/s) and their ratio;
3. times ``python -m processing FILE`` and the reference as separate processes (start-up and imports
   included: what a user waits for) and prints their ratio;
4. writes a ``--rss-samples`` chunk (default 100 million rows, 1.6 GB) and reports the peak RSS
   (``VmHWM``) of a child process streaming it through ``extract_features``.

Use small ``--samples`` / ``--rss-samples`` for a quick run. The reference lives here so that
the tests can use it too (``tests/processing``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["reference_features", "reference_preprocess", "write_synthetic_npy"]

_GENERATOR_VERSION = 1
_BLOCK = 1 << 20


def write_synthetic_npy(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` irregular rows (timestamp, value) to ``path`` as ``.npy``, block by block.

    Intervals are uniform in [5, 15] ms (about 100 Hz), with a 2.5 s gap every ~200 000 rows,
    about one row in 10 000 with a NaN value, a slow drift, two tones and noise.
    """
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    t_next = 1.7e9
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (n, 2)})
        for start in range(0, n, _BLOCK):
            m = min(_BLOCK, n - start)
            dt = rng.uniform(0.005, 0.015, m)
            dt[rng.random(m) < 5e-6] += 2.5
            t = t_next + np.cumsum(dt)
            t_next = float(t[-1])
            rel = t - 1.7e9
            v = (
                20.0
                + 1e-4 * rel
                + np.sin(2 * np.pi * 1.3 * rel)
                + 0.3 * np.sin(2 * np.pi * 17.0 * rel)
                + rng.normal(0.0, 0.5, m)
            )
            v[rng.random(m) < 1e-4] = np.nan
            f.write(np.column_stack((t, v)).astype("<f8").tobytes())
    tmp.replace(path)


def reference_preprocess(
    t: np.ndarray, v: np.ndarray, fs: float, max_gap: float
) -> tuple[np.ndarray, float, int, float]:
    """Straightforward preprocessing: ``(grid values, t0, n_dropped, gap_fraction)``."""
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    starts = np.flatnonzero(np.concatenate(([True], np.diff(t) != 0)))
    u = t[starts]
    vm = np.add.reduceat(v, starts) / np.diff(np.append(starts, t.shape[0]))
    t0 = float(u[0])
    n_grid = math.floor((float(u[-1]) - t0) * fs) + 1
    grid = t0 + np.arange(n_grid) / fs
    x = np.interp(grid, u, vm)
    gaps = np.flatnonzero(np.diff(u) > max_gap)
    inside = np.searchsorted(grid, u[gaps + 1], side="left") - np.searchsorted(grid, u[gaps], side="right")
    return x, t0, int((~keep).sum()), float(inside.sum()) / n_grid


def reference_features(
    t: np.ndarray,
    v: np.ndarray,
    fs: float = 100.0,
    nperseg: int = 1024,
    n_bands: int = 8,
    max_lag: int = 64,
    max_gap: float = 1.0,
) -> dict[str, Any]:
    """The feature numbers by the book: ``np.interp``, ``scipy.signal.welch``, one ``np.dot`` per lag."""
    import scipy.signal

    x, t0, n_dropped, gap_fraction = reference_preprocess(t, v, fs, max_gap)
    f, pxx = scipy.signal.welch(
        x,
        fs=fs,
        window="hann",
        nperseg=nperseg,
        noverlap=nperseg // 2,
        detrend="constant",
        scaling="density",
        return_onesided=True,
    )
    bins = np.rint(f / (fs / nperseg))
    edges = np.geomspace(1.0, nperseg / 2, n_bands + 1)
    powers = []
    for b in range(n_bands):
        member = (bins >= edges[b]) & ((bins < edges[b + 1]) | ((b == n_bands - 1) & (bins == nperseg / 2)))
        powers.append(float(pxx[member].sum() * (fs / nperseg)))
    d = x - x.mean()
    den = float(np.dot(d, d))
    acf = [float(np.dot(d[:-k], d[k:]) / den) for k in range(1, max_lag + 1)]
    return {
        "n_resampled": int(x.shape[0]),
        "n_dropped": n_dropped,
        "t0": t0,
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "gap_fraction": gap_fraction,
        "band_powers": powers,
        "acf": acf,
    }


def _compare(ours: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("n_resampled", "n_dropped"):
        if ours[key] != ref[key]:
            problems.append(f"{key}: {ours[key]} != {ref[key]}")
    for key in ("mean", "std", "min", "max", "gap_fraction"):
        if not math.isclose(ours[key], ref[key], rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{key}: {ours[key]!r} vs {ref[key]!r}")
    rel = max(abs(a - b) / abs(b) for a, b in zip(ours["band_powers"], ref["band_powers"], strict=True) if b)
    if rel > 1e-9:
        problems.append(f"band_powers: max relative difference {rel:.3g} > 1e-9")
    err = max(abs(a - b) for a, b in zip(ours["acf"], ref["acf"], strict=True))
    if err > 1e-9:
        problems.append(f"acf: max absolute difference {err:.3g} > 1e-9")
    return problems


def _child_throughput(path: str, repeat: int) -> None:
    """In this process: time the reference and the pipeline on ``path``; print one JSON line."""
    import scipy.fft

    from processing.allocator import keep_freed_memory
    from processing.features import ProcessingSettings, extract_features

    settings = ProcessingSettings()
    workers = int(os.environ.get("BENCH_THREADS", "1"))
    if os.environ.get("BENCH_MALLOC_TUNING", "1") == "1":
        # What `python -m processing` does; the reference runs in this same process with it.
        keep_freed_memory()
    ref_times: list[float] = []
    our_times: list[float] = []
    ref_cpu: list[float] = []
    our_cpu: list[float] = []
    ref: dict[str, Any] = {}
    ours: dict[str, Any] = {}
    with scipy.fft.set_workers(workers):
        for _ in range(repeat):
            start, cpu = time.perf_counter(), time.process_time()
            data = np.load(path)
            ref = reference_features(data[:, 0], data[:, 1])
            ref_times.append(time.perf_counter() - start)
            ref_cpu.append(time.process_time() - cpu)
            del data
            start, cpu = time.perf_counter(), time.process_time()
            ours = extract_features(path, "bench/synthetic.npy", settings, threads=workers)
            our_times.append(time.perf_counter() - start)
            our_cpu.append(time.process_time() - cpu)
    n_raw = int(ours["n_raw"])
    print(
        json.dumps(
            {
                "n_raw": n_raw,
                "reference_s": min(ref_times),
                "pipeline_s": min(our_times),
                "reference_cpu_s": min(ref_cpu),
                "pipeline_cpu_s": min(our_cpu),
                "problems": _compare(ours, ref),
            }
        )
    )


def _child_rss(path: str) -> None:
    """In this process: stream ``path`` through extract_features; print peak RSS (VmHWM)."""
    from processing.allocator import keep_freed_memory
    from processing.features import extract_features

    if os.environ.get("BENCH_MALLOC_TUNING", "1") == "1":
        keep_freed_memory()

    def hwm() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return -1

    before = hwm()
    start = time.perf_counter()
    record = extract_features(path, "bench/big.npy")
    print(
        json.dumps(
            {"n_raw": record["n_raw"], "seconds": time.perf_counter() - start, "hwm_after_import": before, "hwm": hwm()}
        )
    )


def _child_reference(path: str) -> None:
    """In this process: the reference pipeline once on ``path``, its record as JSON (a whole process)."""
    data = np.load(path)
    print(json.dumps(reference_features(data[:, 0], data[:, 1])))


def _whole_process(path: Path, repeat: int) -> dict[str, float]:
    """Wall time of ``python -m processing PATH`` and of the reference as separate processes, best of ``repeat``.

    Everything a user waits for is in: interpreter start-up, imports (scipy for the reference,
    numpy only for the CLI), reading the file, the features, printing the JSON.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    commands = {
        # The CLI's defaults (two threads when 2+ CPUs are available), and pinned to one thread.
        "cli": [sys.executable, "-m", "processing", str(path), "--chunk-name", "bench/synthetic.npy"],
        "cli_1_thread": [
            sys.executable,
            "-m",
            "processing",
            str(path),
            "--chunk-name",
            "bench/synthetic.npy",
            "--threads",
            "1",
        ],
        "reference": [sys.executable, "-m", "benchmarks.bench_processing", "--child-reference", str(path)],
    }
    best: dict[str, float] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for label, command in commands.items():
            start = time.perf_counter()
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            best[label] = min(best.get(label, math.inf), time.perf_counter() - start)
            outputs[label] = json.loads(out.stdout)
    best["problems"] = len(_compare(outputs["cli"], outputs["reference"])) + len(
        _compare(outputs["cli_1_thread"], outputs["reference"])
    )
    return best


def _ensure(directory: Path, n: int) -> Path:
    path = directory / f"synthetic-v{_GENERATOR_VERSION}-{n}.npy"
    if not path.exists():
        print(f"writing {path} ({n:,} rows, {16 * n / 2**30:.2f} GiB) ...", flush=True)
        write_synthetic_npy(path, n)
    return path


def _run_child(mode: str, path: Path, threads: int, repeat: int, malloc_tuning: bool) -> dict[str, Any]:
    env = dict(
        os.environ,
        BENCH_MALLOC_TUNING="1" if malloc_tuning else "0",
        BENCH_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_processing", f"--child-{mode}", str(path), "--repeat", str(repeat)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_processing", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--samples", type=int, default=20_000_000, help="rows of the throughput chunk (default: %(default)s)"
    )
    parser.add_argument(
        "--rss-samples",
        type=int,
        default=100_000_000,
        help="rows of the peak-RSS chunk; 0 skips it (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="thread counts to measure (BLAS and scipy.fft workers; default: 1 2)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed repetitions, best one kept (default: %(default)s)")
    parser.add_argument(
        "--dir", type=Path, default=Path(".bench"), help="where the synthetic chunks are written (default: %(default)s)"
    )
    parser.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="do not call processing.allocator.keep_freed_memory() (which python -m processing does)",
    )
    parser.add_argument("--child-throughput", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--child-rss", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--child-reference", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_reference:
        _child_reference(args.child_reference)
        return 0
    if args.child_throughput:
        _child_throughput(args.child_throughput, args.repeat)
        return 0
    if args.child_rss:
        _child_rss(args.child_rss)
        return 0
    if args.samples < 10_000 or args.repeat < 1 or any(t < 1 for t in args.threads):
        parser.error("--samples must be >= 10000, --repeat and --threads >= 1")
    args.dir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}; load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}, numpy {np.__version__}"
    )
    print(
        f"malloc tuning (processing.allocator.keep_freed_memory): {'off' if args.no_malloc_tuning else 'on'}, in both the reference and the pipeline"
    )
    path = _ensure(args.dir, args.samples)
    failed = False
    for threads in args.threads:
        r = _run_child("throughput", path, threads, args.repeat, not args.no_malloc_tuning)
        ref_rate, our_rate = r["n_raw"] / r["reference_s"], r["n_raw"] / r["pipeline_s"]
        print(
            f"threads={threads}: {r['n_raw']:,} samples  reference {ref_rate / 1e6:.2f} M samples/s ({r['reference_s']:.2f} s)"
            f"  pipeline {our_rate / 1e6:.2f} M samples/s ({r['pipeline_s']:.2f} s)  ratio {our_rate / ref_rate:.2f}x"
        )
        print(
            f"  CPU time (less sensitive to a loaded machine): reference {r['reference_cpu_s']:.2f} s,"
            f" pipeline {r['pipeline_cpu_s']:.2f} s, ratio {r['reference_cpu_s'] / r['pipeline_cpu_s']:.2f}x"
        )
        if r["problems"]:
            failed = True
            print("  RESULTS DIFFER: " + "; ".join(r["problems"]))
        else:
            print("  results identical within tolerances (band powers 1e-9 rel, acf 1e-9 abs, statistics 1e-9 rel)")
    w = _whole_process(path, args.repeat)
    print(
        f"whole process (separate processes, imports and start-up included): python -m processing {w['cli']:.2f} s"
        f" (--threads 1: {w['cli_1_thread']:.2f} s), reference {w['reference']:.2f} s,"
        f" ratio {w['reference'] / w['cli']:.2f}x (--threads 1: {w['reference'] / w['cli_1_thread']:.2f}x)"
        + ("" if not w["problems"] else "  RESULTS DIFFER")
    )
    failed = failed or bool(w["problems"])
    if args.rss_samples:
        big = _ensure(args.dir, args.rss_samples)
        r = _run_child("rss", big, 1, 1, not args.no_malloc_tuning)
        print(
            f"peak RSS streaming {r['n_raw']:,} samples ({big.stat().st_size / 2**30:.2f} GiB .npy): {r['hwm'] / 2**20:.0f} MiB (after imports: {r['hwm_after_import'] / 2**20:.0f} MiB), {r['seconds']:.1f} s"
        )
    return 1 if failed else 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
