"""Realistic synthetic sensor chunks for the demo and the end-to-end tests.

Each sensor has its own sampling rate, a dominant oscillation and AR(1) noise; the samples arrive
the way real field devices deliver them: jittered (irregular) timestamps, gaps where the device was
offline, and repeated rows (a device re-sending its buffer after a reconnect). One chunk is broken
on purpose (a corrupted row), so the pipeline's error path is exercised too.

Everything is derived from ``seed``: the same call gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from chunk_contract.names import validate_chunk_name

__all__ = ["BAD_CHUNK_REASON", "SensorProfile", "SyntheticChunk", "chunk_csv", "generate_chunks", "profiles"]

BAD_CHUNK_REASON = "a corrupted row: the value column holds text ('ERR#42') instead of a number"


@dataclass(frozen=True)
class SensorProfile:
    """How one synthetic sensor behaves.

    Parameters
    ----------
    sensor : str
        Sensor id, the first path segment of its chunk names.
    rate_hz : float
        Nominal sampling rate; actual intervals are jittered around ``1 / rate_hz``.
    tone_hz : float
        Frequency of the dominant oscillation.
    ar_coefficient : float
        AR(1) coefficient of the background noise (its lag-1 autocorrelation).
    """

    sensor: str
    rate_hz: float
    tone_hz: float
    ar_coefficient: float


@dataclass(frozen=True)
class SyntheticChunk:
    """One chunk: its blob name, its CSV bytes and what was planted in it."""

    name: str
    data: bytes
    sensor: str
    samples: int
    bad: bool = False


def profiles(count: int) -> list[SensorProfile]:
    """``count`` distinct sensor profiles (different rates, tones and noise colours)."""
    if count < 1:
        raise ValueError(f"sensor count must be at least 1, got {count}")
    base = [
        SensorProfile("sensor-001", rate_hz=50.0, tone_hz=2.0, ar_coefficient=0.6),
        SensorProfile("sensor-002", rate_hz=100.0, tone_hz=12.0, ar_coefficient=0.3),
        SensorProfile("sensor-003", rate_hz=20.0, tone_hz=0.5, ar_coefficient=0.9),
        SensorProfile("sensor-004", rate_hz=200.0, tone_hz=40.0, ar_coefficient=0.1),
    ]
    out = []
    for i in range(count):
        p = base[i % len(base)]
        out.append(SensorProfile(f"sensor-{i + 1:03d}", p.rate_hz, p.tone_hz, p.ar_coefficient))
    return out


def chunk_csv(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    """Render samples as the chunk format: ``timestamp,value`` header, ISO-8601 UTC timestamps."""
    buf = io.StringIO()
    buf.write("timestamp,value\n")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for t, v in zip(timestamps.tolist(), values.tolist(), strict=True):
        stamp = (epoch + timedelta(seconds=t)).isoformat(timespec="microseconds").replace("+00:00", "Z")
        buf.write(f"{stamp},{v:.6f}\n")
    return buf.getvalue().encode()


def _samples(profile: SensorProfile, start: float, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    dt = 1.0 / profile.rate_hz
    n = int(seconds * profile.rate_hz)
    # Irregular sampling: each interval jittered by up to ±30 %.
    intervals = dt * (1.0 + rng.uniform(-0.3, 0.3, size=n))
    t = start + np.cumsum(intervals)
    # Gaps: drop one or two stretches of 2-8 % of the chunk (device offline).
    keep = np.ones(n, dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        length = int(n * rng.uniform(0.02, 0.08))
        at = int(rng.integers(0, max(1, n - length)))
        keep[at : at + length] = False
    # AR(1) background plus the dominant tone.
    noise = np.empty(n)
    noise[0] = rng.normal()
    shocks = rng.normal(size=n)
    for i in range(1, n):
        noise[i] = profile.ar_coefficient * noise[i - 1] + shocks[i]
    x = 3.0 * np.sin(2 * np.pi * profile.tone_hz * t) + 0.5 * noise
    t, x = t[keep], x[keep]
    # Duplicates: ~1 % of rows sent twice (a reconnect re-sends the buffer).
    dup = np.sort(rng.choice(t.size, size=max(1, t.size // 100), replace=False))
    t = np.insert(t, dup, t[dup])
    x = np.insert(x, dup, x[dup])
    return t, x


def generate_chunks(
    sensors: int = 3,
    chunks_per_sensor: int = 3,
    seconds_per_chunk: float = 60.0,
    seed: int = 20261122,
    bad_chunk: bool = True,
    start: datetime = datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
) -> list[SyntheticChunk]:
    """Generate chunks for ``sensors`` sensors, ``chunks_per_sensor`` consecutive chunks each.

    Parameters
    ----------
    sensors, chunks_per_sensor : int
        How many sensors and how many consecutive chunks per sensor.
    seconds_per_chunk : float
        Time span covered by one chunk.
    seed : int
        Seed of the random generator; the output is a pure function of the arguments.
    bad_chunk : bool
        Add one extra, corrupted chunk (see :data:`BAD_CHUNK_REASON`).
    start : datetime
        Timestamp of the first sample of every sensor's first chunk.

    Returns
    -------
    list of SyntheticChunk
        Names look like ``sensor-001/2026/11/22/080000.csv``, ordered by sensor then time.
    """
    if chunks_per_sensor < 1 or seconds_per_chunk <= 0:
        raise ValueError(
            f"chunks_per_sensor must be >= 1 and seconds_per_chunk > 0, got {chunks_per_sensor}, {seconds_per_chunk}"
        )
    rng = np.random.default_rng(seed)
    out: list[SyntheticChunk] = []
    for profile in profiles(sensors):
        for k in range(chunks_per_sensor):
            begin = start + timedelta(seconds=k * seconds_per_chunk)
            t, x = _samples(profile, begin.timestamp(), seconds_per_chunk, rng)
            name = validate_chunk_name(f"{profile.sensor}/{begin:%Y/%m/%d/%H%M%S}.csv")
            out.append(SyntheticChunk(name, chunk_csv(t, x), profile.sensor, int(t.size)))
    if bad_chunk:
        profile = profiles(sensors)[0]
        begin = start + timedelta(seconds=chunks_per_sensor * seconds_per_chunk)
        t, x = _samples(profile, begin.timestamp(), seconds_per_chunk, rng)
        lines = chunk_csv(t, x).decode().splitlines()
        middle = len(lines) // 2
        lines[middle] = lines[middle].split(",")[0] + ",ERR#42"
        name = validate_chunk_name(f"{profile.sensor}/{begin:%Y/%m/%d/%H%M%S}.csv")
        out.append(SyntheticChunk(name, ("\n".join(lines) + "\n").encode(), profile.sensor, int(t.size), bad=True))
    return out
