"""Processing settings shared by the CLI, the flow and the streaming pipeline."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["ProcessingSettings"]


def _is_int(value: object) -> bool:
    # bool is an int subclass; True as a segment length is a bug, not a 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ProcessingSettings:
    """Settings of one processing run, validated on construction.

    Parameters
    ----------
    fs : float
        Resampling rate in Hz; finite and > 0.
    nperseg : int
        Welch segment length in samples; >= 8. A chunk with fewer resampled samples is an error.
    n_bands : int
        Number of log-spaced filter-bank bands; >= 1.
    max_lag : int
        Largest autocorrelation lag in samples; >= 1 and (checked at run time) smaller than
        the number of resampled samples.
    max_gap : float
        Seconds; grid points inside a gap between samples longer than this count towards
        ``gap_fraction``. Finite and > 0.

    Raises
    ------
    ValueError
        Naming the setting and the rule it broke.
    """

    fs: float = 100.0
    nperseg: int = 1024
    n_bands: int = 8
    max_lag: int = 64
    max_gap: float = 1.0

    def __post_init__(self) -> None:
        if not _is_real(self.fs) or not math.isfinite(self.fs) or self.fs <= 0:
            raise ValueError(f"fs must be a finite number > 0 (Hz), got {self.fs!r}")
        if not _is_int(self.nperseg) or self.nperseg < 8:
            raise ValueError(f"nperseg must be an integer >= 8, got {self.nperseg!r}")
        if not _is_int(self.n_bands) or self.n_bands < 1:
            raise ValueError(f"n_bands must be an integer >= 1, got {self.n_bands!r}")
        if not _is_int(self.max_lag) or self.max_lag < 1:
            raise ValueError(f"max_lag must be an integer >= 1, got {self.max_lag!r}")
        if not _is_real(self.max_gap) or not math.isfinite(self.max_gap) or self.max_gap <= 0:
            raise ValueError(f"max_gap must be a finite number > 0 (seconds), got {self.max_gap!r}")
        # Normalise so that as_dict() is plain JSON (an int fs stays a float).
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "max_gap", float(self.max_gap))

    def as_dict(self) -> dict[str, float | int]:
        """The settings as a plain JSON-serialisable dict (recorded in every feature record)."""
        return asdict(self)
