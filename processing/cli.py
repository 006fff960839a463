"""Command line: print the feature record of one chunk file as JSON.

Bad input exits with status 2 and one line on stderr naming the file and the broken rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from processing.settings import ProcessingSettings

__all__ = ["default_threads", "main"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (the CLI's contract for bad input)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    defaults = ProcessingSettings()  # standard library only: --help stays fast
    p = _OneLineParser(
        prog="python -m processing",
        description="Read one sensor chunk (CSV 'timestamp,value' or .npy float64 (N, 2)), resample it, and print its feature record as JSON on stdout.",
        epilog="Exit status: 0 on success, 2 on bad input or settings (one line on stderr).",
    )
    p.add_argument(
        "chunk_file",
        metavar="CHUNK_FILE",
        help="chunk file: .csv (header 'timestamp,value'; epoch seconds or ISO 8601 with Z/offset) or .npy; other suffixes are sniffed",
    )
    p.add_argument(
        "--fs",
        type=float,
        default=defaults.fs,
        metavar="HZ",
        help="resampling rate in Hz, > 0 (default: %(default)s)",
    )
    p.add_argument(
        "--nperseg",
        type=int,
        default=defaults.nperseg,
        metavar="N",
        help="Welch segment length in samples, >= 8; a chunk with fewer resampled samples is an error (default: %(default)s)",
    )
    p.add_argument(
        "--bands",
        type=int,
        default=defaults.n_bands,
        metavar="N",
        help="number of log-spaced bands from fs/nperseg to fs/2, >= 1 (default: %(default)s)",
    )
    p.add_argument(
        "--max-lag",
        type=int,
        default=defaults.max_lag,
        metavar="N",
        help="largest autocorrelation lag in samples, >= 1 and < resampled length (default: %(default)s)",
    )
    p.add_argument(
        "--max-gap",
        type=float,
        default=defaults.max_gap,
        metavar="S",
        help="seconds; grid points inside longer gaps count in gap_fraction, > 0 (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="2 overlaps reading/resampling with the spectral and lag work on a second thread; results are identical (default: 2 when this process may use 2 or more CPUs, else 1)",
    )
    p.add_argument(
        "--chunk-name",
        metavar="NAME",
        default=None,
        help="chunk (blob) name for the record; its first path segment is the sensor id (default: the file's base name)",
    )
    return p


def default_threads() -> int:
    """2 when this process may run on 2 or more CPUs (its affinity mask, e.g. a container's cpuset), else 1.

    The pass has two stages (read + resample, then Welch + lags + statistics), so a third thread
    adds nothing.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    # Imported here so that --help does not pay for numpy/scipy.
    from chunk_contract.names import InvalidChunkName
    from processing.allocator import keep_freed_memory
    from processing.errors import ChunkError
    from processing.features import extract_features

    try:
        settings = ProcessingSettings(
            fs=args.fs, nperseg=args.nperseg, n_bands=args.bands, max_lag=args.max_lag, max_gap=args.max_gap
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads is None:
        args.threads = default_threads()
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    keep_freed_memory()  # block-sized temporaries are reused instead of page-faulted in again
    chunk_name = args.chunk_name if args.chunk_name is not None else os.path.basename(args.chunk_file)
    try:
        record = extract_features(args.chunk_file, chunk_name, settings, threads=args.threads)
    except (ChunkError, InvalidChunkName) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    json.dump(record, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0
