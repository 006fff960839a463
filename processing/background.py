"""Run a block consumer on a worker thread: the two halves of the streaming pass overlap.

The main thread reads and resamples; the worker runs Welch, lags and statistics on the
resampled blocks. numpy, ``np.interp``, ``numpy.fft`` and BLAS release the GIL on block-sized
arrays, so the halves really run in parallel. A bounded queue keeps memory bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

__all__ = ["BackgroundConsumer"]


class BackgroundConsumer:
    """Call ``inner(block)`` for every block, in order, on one worker thread.

    Parameters
    ----------
    inner : callable
        The consumer; only the worker thread calls it.
    depth : int
        Blocks that may wait in the queue (>= 1); the producer blocks beyond that.
    """

    def __init__(self, inner: Callable[[np.ndarray], None], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth!r}")
        self.inner = inner
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._discard = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="processing-accumulators", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (block := self._queue.get()) is not None:
            # After an error (or when discarding) keep draining, so that the producer never blocks.
            if self._error is None and not self._discard:
                try:
                    self.inner(block)
                except BaseException as exc:
                    self._error = exc

    def __call__(self, block: np.ndarray) -> None:
        """Queue ``block`` (the caller must not modify it afterwards)."""
        if self._closed:
            raise RuntimeError("consumer is closed")
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def close(self, *, discard: bool = False) -> None:
        """Wait until every queued block is consumed; re-raise the worker's error.

        With ``discard=True`` queued blocks are dropped and errors are not raised (used when
        the run is abandoned anyway). Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._discard = discard
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and not discard:
            raise self._error
