"""Which chunks the card plots: at most a few, the worst first, chosen while the chunks stream by.

A batch carries up to 200 chunks; the card lists them all in its table but plots only
``SENSOR_CARD_MAX_CHUNKS``. ``preprocess`` keeps the envelope (the card's signal panel) of only those
chunks, so the run's artifacts stay bounded whatever the batch size. "Worst" is what a person
would want to look at first: the largest share of the grid inside gaps plus the share of rows
dropped as non-finite; ties go to the chunk that came first. Pure, standard library only.
"""

from __future__ import annotations

import heapq
from typing import Any

__all__ = ["WorstChunks", "badness"]


def badness(*, gap_fraction: float, n_dropped: int, n_raw: int) -> float:
    """How much of a chunk is missing: grid fraction in gaps + fraction of rows dropped (0 … 2)."""
    dropped = n_dropped / n_raw if n_raw else 0.0
    return float(gap_fraction) + dropped


class WorstChunks:
    """Keep the ``limit`` worst chunks offered (by :func:`badness`), with a payload each.

    Parameters
    ----------
    limit : int
        How many to keep (>= 0; 0 keeps none).
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be an integer >= 0, got {limit!r}")
        self.limit = limit
        self._heap: list[tuple[float, int, str, Any]] = []  # min-heap: the least bad kept is on top
        self._seen = 0

    def offer(self, name: str, score: float, payload: Any) -> None:
        """Consider one chunk; it displaces the least bad kept one if it is worse."""
        # -seen: among equal scores the earlier chunk ranks worse, so it is kept and shown first.
        item = (score, -self._seen, name, payload)
        self._seen += 1
        if self.limit == 0:
            return
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def worst_first(self) -> dict[str, Any]:
        """``{name: payload}`` of the kept chunks, the worst first."""
        return {name: payload for _, _, name, payload in sorted(self._heap, key=lambda i: i[:2], reverse=True)}
