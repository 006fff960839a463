"""Keep freed memory for reuse (glibc), so block-wise numpy work does not page-fault.

The streaming pipeline allocates many block-sized temporaries (about 2 MiB each). glibc hands
such sizes back to the kernel on ``free`` (``mmap`` threshold, heap trimming), so every new
block page-faults its memory in again: measured, that doubles the CPU time of
:func:`processing.features.extract_features`. Raising the two thresholds keeps freed blocks in
the heap. Memory stays bounded: the pipeline's working set is a few dozen MiB.

This changes a process-wide setting, so only entry points call it (``python -m processing``,
the benchmark), never the library functions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 128 << 20) -> bool:
    """Ask glibc to serve allocations below ``mmap_threshold`` from the heap and keep up to
    ``trim_threshold`` bytes of freed heap. Return whether it was applied (glibc Linux only).

    Parameters
    ----------
    mmap_threshold : int
        Bytes; allocations at least this large still get their own mapping. > 0.
    trim_threshold : int
        Bytes of free heap top kept instead of returned to the kernel. > 0.
    """
    if mmap_threshold <= 0:
        raise ValueError(f"mmap_threshold must be > 0 bytes, got {mmap_threshold!r}")
    if trim_threshold <= 0:
        raise ValueError(f"trim_threshold must be > 0 bytes, got {trim_threshold!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )
