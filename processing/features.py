"""The processing API: preprocess a chunk, compute band powers and lags, build the feature record.

Two ways to the same record:

- step by step (the flow): :func:`preprocess` → :func:`band_powers` + :func:`autocorrelation`
  → :func:`feature_record`, holding the resampled series in memory;
- in one streaming pass (the CLI): :func:`extract_features`, whose memory does not grow with
  the chunk (for chunks with non-decreasing timestamps).

Both run the same accumulators (:mod:`processing.welch`, :mod:`processing.acf`), so they agree
to float rounding (far below 1e-9).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from chunk_contract.names import sensor_id, validate_chunk_name
from processing.acf import LagAccumulator, LagState, single_threaded_blas
from processing.background import BackgroundConsumer
from processing.envelope import Envelope, EnvelopeAccumulator
from processing.errors import ChunkError
from processing.readers import ChunkReader, Source, open_chunk
from processing.resample import OutOfRange, Resampler, Unsorted
from processing.settings import ProcessingSettings
from processing.welch import WelchAccumulator, WelchState, band_edges, band_powers_from_psd

__all__ = [
    "DEFAULT_SETTINGS",
    "ChunkError",
    "ChunkSummary",
    "Preprocessed",
    "ProcessingSettings",
    "Source",
    "StreamedChunk",
    "autocorrelation",
    "band_powers",
    "bands_from_state",
    "extract_features",
    "feature_record",
    "preprocess",
    "record_from_stream",
    "stream_chunk",
]

_WHOLE_ARRAY_BLOCK = 1 << 18
# The defaults; frozen, so one shared instance is a safe default argument.
DEFAULT_SETTINGS = ProcessingSettings()


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """A chunk resampled onto the uniform grid ``t0 + k / fs`` (the flow's ``preprocess`` artifact).

    Attributes
    ----------
    values : numpy.ndarray
        float64 grid values.
    t0, t_end : float
        Epoch seconds of the first and last grid point.
    fs : float
        Grid rate, Hz.
    n_raw : int
        Data rows read (header excluded).
    n_dropped : int
        Rows dropped because the timestamp or the value was not finite.
    gap_fraction : float
        Fraction of grid points strictly inside a gap longer than ``max_gap``.
    source : str
        File path or name the chunk came from (for error messages).
    """

    values: np.ndarray
    t0: float
    t_end: float
    fs: float
    n_raw: int
    n_dropped: int
    gap_fraction: float
    source: str = "<chunk>"


@dataclass(frozen=True)
class _Summary:
    source: str
    t0: float
    t_end: float
    n_raw: int
    n_dropped: int
    n_resampled: int
    gap_fraction: float


def _resample_stream(
    reader: ChunkReader,
    settings: ProcessingSettings,
    consume: Callable[[np.ndarray], None],
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
) -> _Summary:
    rs = Resampler(settings.fs, settings.max_gap)
    label = reader.label
    try:
        for t, v in blocks:
            for out in rs.feed(t, v):
                consume(out)
    except OutOfRange as exc:
        raise ChunkError(label, str(exc)) from None
    for out in rs.finish():
        consume(out)
    if rs.t0 is None or rs.t_last is None:
        raise ChunkError(label, f"no finite rows: all {reader.n_raw} rows have a non-finite timestamp or value")
    if rs.t_last == rs.t0:
        raise ChunkError(
            label,
            f"all {reader.n_raw - rs.n_dropped} finite rows have the same timestamp ({rs.t0!r}); need a time span to resample",
        )
    t_end = rs.t0 + (rs.n_out - 1) / settings.fs
    return _Summary(label, rs.t0, t_end, reader.n_raw, rs.n_dropped, rs.n_out, rs.gap_points / rs.n_out)


def _run(
    source: Source,
    settings: ProcessingSettings,
    name: str | None,
    make_consumer: Callable[[], Callable[[np.ndarray], None]],
    max_unsorted_rows: int | None = None,
) -> tuple[_Summary, Callable[[np.ndarray], None]]:
    """Resample ``source`` into fresh consumers; stream if sorted, else sort in memory and redo."""
    reader = open_chunk(source, name)
    consume = make_consumer()
    try:
        blocks = reader.blocks()
        try:
            summary = _resample_stream(reader, settings, consume, blocks)
        except Unsorted:
            blocks.close()  # release the first pass's file before reading again
            _close(consume, discard=True)
            consume = make_consumer()
            summary = _resample_stream(reader, settings, consume, [_sorted_in_memory(reader, max_unsorted_rows)])
        _close(consume)  # a background consumer finishes its queue here
    except BaseException:
        _close(consume, discard=True)
        raise
    finally:
        reader.close()
    _check_length(summary, settings)
    return summary, consume


def _close(consume: Callable[[np.ndarray], None], *, discard: bool = False) -> None:
    if isinstance(consume, BackgroundConsumer):
        consume.close(discard=discard)


def _sorted_in_memory(reader: ChunkReader, max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    # Unsorted chunks are the exception: they are sorted whole, in memory (documented).
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    rows = 0
    for part in reader.blocks(reuse=False):
        rows += part[0].shape[0]
        if max_rows is not None and rows > max_rows:
            raise ChunkError(
                reader.label,
                f"timestamps are not in order and the chunk has more than {max_rows} rows: sorting it would take memory "
                "in proportion to the chunk; upload chunks in time order, or split them",
            )
        parts.append(part)
    t = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    del parts
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def _check_length(summary: _Summary, settings: ProcessingSettings) -> None:
    n = summary.n_resampled
    if n < settings.nperseg:
        raise ChunkError(
            summary.source,
            f"only {n} samples after resampling at fs={settings.fs:g} Hz, fewer than nperseg={settings.nperseg}; lower nperseg or send a longer chunk",
        )
    if settings.max_lag >= n:
        raise ChunkError(summary.source, f"max_lag={settings.max_lag} must be smaller than the {n} resampled samples")


def preprocess(
    source: Source, settings: ProcessingSettings = DEFAULT_SETTINGS, *, name: str | None = None
) -> Preprocessed:
    """Read a chunk and resample it onto the uniform grid, in memory.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        The chunk (CSV ``timestamp,value`` or ``.npy`` float64 (N, 2)).
    settings : ProcessingSettings
        ``fs`` and ``max_gap`` are used here; ``nperseg`` and ``max_lag`` are checked against
        the resampled length.
    name : str, optional
        File name for format detection and errors when ``source`` is bytes or a file object.

    Returns
    -------
    Preprocessed

    Raises
    ------
    ChunkError
        Bad content, naming the file (and line): see ``docs/processing.md`` for the rules.
    """
    out: list[np.ndarray] = []

    def fresh() -> Callable[[np.ndarray], None]:
        out.clear()  # a restart (unsorted chunk) starts over
        return out.append

    summary, _ = _run(source, settings, name, fresh)
    values = np.concatenate(out) if len(out) > 1 else out[0].copy()
    return Preprocessed(
        values,
        summary.t0,
        summary.t_end,
        settings.fs,
        summary.n_raw,
        summary.n_dropped,
        summary.gap_fraction,
        summary.source,
    )


def band_powers(values: np.ndarray, settings: ProcessingSettings) -> tuple[list[float], list[float]]:
    """Filter-bank band powers of a uniformly sampled series.

    Welch's PSD (Hann, ``nperseg``, 50 % overlap, constant detrend, density, one-sided) summed
    over ``n_bands`` log-spaced bands from ``fs / nperseg`` to ``fs / 2`` (bin in ``[lo, hi)``,
    the last band includes ``fs / 2``), each times the bin width ``fs / nperseg``.

    Returns
    -------
    edges : list of float
        ``n_bands + 1`` band edges, Hz.
    powers : list of float
        ``n_bands`` band powers (units of value², like the variance).

    Raises
    ------
    ValueError
        If ``values`` is not 1-D or is shorter than ``settings.nperseg``.
    """
    x = _as_series(values)
    if x.shape[0] < settings.nperseg:
        raise ValueError(f"nperseg={settings.nperseg} is larger than the series ({x.shape[0]} samples)")
    acc = WelchAccumulator(settings.fs, settings.nperseg)
    for start in range(0, x.shape[0], _WHOLE_ARRAY_BLOCK):
        acc.feed(x[start : start + _WHOLE_ARRAY_BLOCK])
    return _bands(acc, settings)


def _bands(acc: WelchAccumulator, settings: ProcessingSettings) -> tuple[list[float], list[float]]:
    return bands_from_state(acc.state(), settings)


def bands_from_state(state: WelchState, settings: ProcessingSettings) -> tuple[list[float], list[float]]:
    """``(edges, powers)`` of the series a Welch accumulator state summarises (see :func:`band_powers`)."""
    _, psd = state.psd()
    edges = band_edges(settings.fs, settings.nperseg, settings.n_bands)
    powers = band_powers_from_psd(psd, settings.fs, settings.nperseg, settings.n_bands)
    return [float(e) for e in edges], [float(p) for p in powers]


def autocorrelation(values: np.ndarray, max_lag: int) -> list[float]:
    """Autocorrelation ``r_k = Σ d_t d_(t+k) / Σ d_t²``, ``d = x - mean(x)``, for k = 1 … max_lag.

    A constant series (0/0) gives 0.0 for every lag.

    Raises
    ------
    ValueError
        If ``max_lag`` is not an integer in ``[1, len(values))`` or ``values`` is not 1-D.
    """
    x = _as_series(values)
    if isinstance(max_lag, bool) or not isinstance(max_lag, int | np.integer) or not 1 <= max_lag < x.shape[0]:
        raise ValueError(
            f"max_lag must be an integer >= 1 and smaller than the series length {x.shape[0]}, got {max_lag!r}"
        )
    acc = LagAccumulator(int(max_lag))
    with single_threaded_blas():
        for start in range(0, x.shape[0], _WHOLE_ARRAY_BLOCK):
            acc.feed(x[start : start + _WHOLE_ARRAY_BLOCK])
    return acc.result(constant=bool(x.min() == x.max()))


def _as_series(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be a 1-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    return x


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _record(
    chunk_name: str,
    summary: _Summary,
    stats: tuple[float, float, float, float],
    edges: list[float],
    powers: list[float],
    acf: list[float],
    settings: ProcessingSettings,
) -> dict[str, Any]:
    mean, std, lo, hi = stats
    record: dict[str, Any] = {
        "sensor_id": sensor_id(chunk_name),
        "chunk_name": chunk_name,
        "n_raw": int(summary.n_raw),
        "n_dropped": int(summary.n_dropped),
        "n_resampled": int(summary.n_resampled),
        "t_start": _iso(summary.t0),
        "t_end": _iso(summary.t_end),
        "fs": float(settings.fs),
        "mean": float(mean),
        "std": float(std),
        "min": float(lo),
        "max": float(hi),
        "gap_fraction": float(summary.gap_fraction),
        "band_edges": [float(e) for e in edges],
        "band_powers": [float(p) for p in powers],
        "acf": [float(r) for r in acf],
        "settings": settings.as_dict(),
    }
    numbers = (
        [record[k] for k in ("mean", "std", "min", "max", "gap_fraction")]
        + record["band_edges"]
        + record["band_powers"]
        + record["acf"]
    )
    if not all(math.isfinite(x) for x in numbers):
        raise ChunkError(summary.source, "features are not finite (values too large for float64 arithmetic?)")
    return record


def feature_record(
    chunk_name: str,
    pre: Preprocessed,
    band_edges: list[float],
    band_powers: list[float],
    acf: list[float],
    settings: ProcessingSettings,
) -> dict[str, Any]:
    """Build the JSON-serialisable feature record of one chunk.

    Parameters
    ----------
    chunk_name : str
        Blob name of the chunk; validated with :func:`chunk_contract.names.validate_chunk_name`.
        Its first path segment is the sensor id.
    pre : Preprocessed
        The resampled chunk; ``mean``, ``std`` (population), ``min`` and ``max`` come from
        ``pre.values``.
    band_edges, band_powers, acf : list of float
        From :func:`band_powers` and :func:`autocorrelation`.
    settings : ProcessingSettings
        Recorded under ``"settings"``.

    Returns
    -------
    dict
        Keys: sensor_id, chunk_name, n_raw, n_dropped, n_resampled, t_start, t_end (ISO 8601
        UTC, ``Z``), fs, mean, std, min, max, gap_fraction, band_edges, band_powers, acf, settings.
    """
    validate_chunk_name(chunk_name)
    _check_lengths(band_edges, band_powers, acf, settings)
    x = pre.values
    summary = _Summary(pre.source, pre.t0, pre.t_end, pre.n_raw, pre.n_dropped, int(x.shape[0]), pre.gap_fraction)
    stats = (float(np.mean(x)), float(np.std(x)), float(np.min(x)), float(np.max(x)))
    return _record(chunk_name, summary, stats, band_edges, band_powers, acf, settings)


class _Streaming:
    """Every accumulator of the record (and optionally the card's envelope), fed with each resampled block."""

    def __init__(self, settings: ProcessingSettings, envelope_bins: int = 0) -> None:
        self.welch = WelchAccumulator(settings.fs, settings.nperseg)
        self.lags = LagAccumulator(settings.max_lag)
        self.envelope = EnvelopeAccumulator(envelope_bins) if envelope_bins else None
        self.lo = math.inf
        self.hi = -math.inf

    def __call__(self, block: np.ndarray) -> None:
        self.welch.feed(block)
        self.lags.feed(block)
        if self.envelope is not None:
            self.envelope.feed(block)
        self.lo = min(self.lo, float(block.min()))
        self.hi = max(self.hi, float(block.max()))


@dataclass(frozen=True, eq=False)
class ChunkSummary:
    """Everything the record needs of a chunk but its spectrum and lags: a few numbers.

    Attributes
    ----------
    source : str
        File path or name the chunk came from (for error messages).
    t0, t_end : float
        Epoch seconds of the first and last grid point.
    fs : float
        Grid rate, Hz.
    n_raw, n_dropped, n_resampled : int
        Data rows read, rows dropped (non-finite), grid points.
    gap_fraction : float
        Fraction of grid points strictly inside a gap longer than ``max_gap``.
    mean, std, min, max : float
        Of the resampled values (``std`` is the population standard deviation).
    """

    source: str
    t0: float
    t_end: float
    fs: float
    n_raw: int
    n_dropped: int
    n_resampled: int
    gap_fraction: float
    mean: float
    std: float
    min: float
    max: float

    @property
    def constant(self) -> bool:
        return self.min == self.max


@dataclass(frozen=True, eq=False)
class StreamedChunk:
    """One streaming pass over a chunk, reduced to O(1)-sized states (independent of the chunk's length).

    This is what the flow passes between its steps instead of the resampled series: the branches
    finish ``welch`` and ``lags`` (:meth:`band_powers`, :meth:`autocorrelation`), the join builds
    the record with :func:`record_from_stream`, and the card plots ``envelope``.
    """

    summary: ChunkSummary
    welch: WelchState
    lags: LagState
    envelope: Envelope | None = None

    def band_powers(self, settings: ProcessingSettings) -> tuple[list[float], list[float]]:
        """``(edges, powers)`` as :func:`band_powers` gives them for the resampled series."""
        return bands_from_state(self.welch, settings)

    def autocorrelation(self) -> list[float]:
        """``r_1 … r_max_lag`` as :func:`autocorrelation` gives them for the resampled series."""
        return self.lags.autocorrelation(constant=self.summary.constant)


def stream_chunk(
    source: Source,
    settings: ProcessingSettings = DEFAULT_SETTINGS,
    *,
    name: str | None = None,
    threads: int = 1,
    envelope_bins: int = 0,
    max_unsorted_rows: int | None = None,
) -> StreamedChunk:
    """Read, resample and accumulate a chunk in one pass; keep only the accumulators' states.

    Memory is bounded by the block size for chunks whose timestamps are non-decreasing. A chunk
    that is not in time order is sorted in memory, which needs memory proportional to it:
    ``max_unsorted_rows`` refuses that for chunks with more rows (a :class:`ChunkError`), so a
    task's memory stays bounded whatever is uploaded.

    Parameters
    ----------
    source, settings, name
        As for :func:`preprocess`.
    threads : int
        As for :func:`extract_features`.
    envelope_bins : int
        0 (default): no envelope. Otherwise keep a min/max envelope of ``envelope_bins`` to twice as
        many bins (:mod:`processing.envelope`), for plotting.
    max_unsorted_rows : int, optional
        Most rows of a chunk that is not in time order (None: no limit).

    Raises
    ------
    ChunkError
        Bad content, naming the file (and line).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if envelope_bins and (isinstance(envelope_bins, bool) or not isinstance(envelope_bins, int) or envelope_bins < 1):
        raise ValueError(f"envelope_bins must be 0 or an integer >= 1, got {envelope_bins!r}")
    if max_unsorted_rows is not None and (isinstance(max_unsorted_rows, bool) or max_unsorted_rows < 0):
        raise ValueError(f"max_unsorted_rows must be None or an integer >= 0, got {max_unsorted_rows!r}")

    def make_consumer() -> Callable[[np.ndarray], None]:
        acc = _Streaming(settings, envelope_bins)
        return BackgroundConsumer(acc) if threads > 1 else acc

    with single_threaded_blas():
        summary, consumer = _run(source, settings, name, make_consumer, max_unsorted_rows)
        acc = consumer.inner if isinstance(consumer, BackgroundConsumer) else consumer
        assert isinstance(acc, _Streaming)
        lag_state = acc.lags.state()
    std = math.sqrt(max(lag_state.denominator, 0.0) / lag_state.count)
    return StreamedChunk(
        ChunkSummary(
            summary.source,
            summary.t0,
            summary.t_end,
            settings.fs,
            summary.n_raw,
            summary.n_dropped,
            summary.n_resampled,
            summary.gap_fraction,
            lag_state.mean,
            std,
            acc.lo,
            acc.hi,
        ),
        acc.welch.state(),
        lag_state,
        acc.envelope.result() if acc.envelope is not None else None,
    )


def record_from_stream(
    chunk_name: str,
    summary: ChunkSummary,
    band_edges: list[float],
    band_powers: list[float],
    acf: list[float],
    settings: ProcessingSettings,
) -> dict[str, Any]:
    """The feature record of a streamed chunk (the flow's join), identical to :func:`extract_features`'s.

    Raises
    ------
    ValueError
        If the band or lag lists do not match ``settings``; :class:`ChunkError` if a feature is not finite.
    InvalidChunkName
        If ``chunk_name`` breaks the allow-list.
    """
    validate_chunk_name(chunk_name)
    _check_lengths(band_edges, band_powers, acf, settings)
    s = summary
    inner = _Summary(s.source, s.t0, s.t_end, s.n_raw, s.n_dropped, s.n_resampled, s.gap_fraction)
    return _record(chunk_name, inner, (s.mean, s.std, s.min, s.max), band_edges, band_powers, acf, settings)


def _check_lengths(
    band_edges: list[float], band_powers: list[float], acf: list[float], settings: ProcessingSettings
) -> None:
    if len(band_powers) != settings.n_bands or len(band_edges) != settings.n_bands + 1:
        raise ValueError(
            f"band_powers/band_edges must have n_bands={settings.n_bands} / n_bands+1 entries, got {len(band_powers)} / {len(band_edges)}"
        )
    if len(acf) != settings.max_lag:
        raise ValueError(f"acf must have max_lag={settings.max_lag} entries, got {len(acf)}")


def extract_features(
    source: Source,
    chunk_name: str,
    settings: ProcessingSettings = DEFAULT_SETTINGS,
    *,
    name: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Compute the feature record of a chunk in one streaming pass over blocks.

    Equal (to float rounding) to ``feature_record(chunk_name, pre, *band_powers(pre.values, s),
    autocorrelation(pre.values, s.max_lag), s)`` with ``pre = preprocess(source, s)``. Memory
    stays bounded for chunks whose timestamps are non-decreasing; an unsorted chunk is sorted
    in memory.

    Parameters
    ----------
    source, chunk_name, settings, name
        As for :func:`preprocess` and :func:`feature_record`.
    threads : int
        1 (default): one thread. 2 or more: reading and resampling overlap with Welch, lags and
        statistics on a second thread (the pass has two stages, so more than 2 adds nothing).
        BLAS is limited to one thread either way: the per-block products are too small to gain.

    Raises
    ------
    ChunkError
        Bad content, naming the file (and line).
    InvalidChunkName
        If ``chunk_name`` breaks the allow-list.
    """
    validate_chunk_name(chunk_name)
    streamed = stream_chunk(source, settings, name=name, threads=threads)
    edges, powers = streamed.band_powers(settings)
    return record_from_stream(chunk_name, streamed.summary, edges, powers, streamed.autocorrelation(), settings)
