"""Chunk readers: CSV (``timestamp,value``) and ``.npy`` (float64, shape (N, 2)), in blocks.

A reader yields ``(timestamps, values)`` float64 blocks of at most a few MiB each, so a chunk
larger than memory can be processed in one pass. Readers are restartable (``blocks()`` may be
called again) because an unsorted chunk is detected mid-stream and then re-read into memory.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from datetime import datetime
from typing import BinaryIO, Literal, cast

import numpy as np

from processing.errors import ChunkError

__all__ = ["NPY_MAGIC", "ChunkReader", "Source", "open_chunk"]

Source = str | os.PathLike[str] | bytes | BinaryIO

NPY_MAGIC = b"\x93NUMPY"
CSV_HEADER = ("timestamp", "value")
_CSV_BLOCK_BYTES = 4 << 20
_NPY_BLOCK_ROWS = 1 << 18
_MAX_LINE_BYTES = 1 << 20
# A non-seekable stream is spooled so that it can be re-read; small ones stay in memory.
_SPOOL_MEMORY_BYTES = 16 << 20

Format = Literal["csv", "npy"]


def _label_of(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    stream_name = getattr(source, "name", None)
    return stream_name if isinstance(stream_name, str) else "<stream>"


class ChunkReader:
    """A chunk opened for (repeated) block-wise reading.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        Where the chunk is.
    name : str, optional
        File name used for format detection (``.csv`` / ``.npy`` suffix) and in error messages
        when ``source`` is bytes or a file object. With a path, the path's own suffix is used.

    Attributes
    ----------
    label : str
        The file path or name shown in errors.
    format : {"csv", "npy"}
        Detected from the suffix; an unknown suffix is sniffed (``\\x93NUMPY`` magic means npy).
    n_raw : int
        Data rows read by the last complete ``blocks()`` pass (header excluded).
    """

    def __init__(self, source: Source, name: str | None = None) -> None:
        self.label = _label_of(source, name)
        self._source = source
        self._spool: BinaryIO | None = None
        self._start = 0
        if not isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
            if not hasattr(source, "read"):
                raise TypeError(f"source must be a path, bytes or a binary file object, got {type(source).__name__}")
            if isinstance(source, io.TextIOBase):
                raise TypeError(f"{self.label}: source is a text stream; open the file in binary mode ('rb')")
            if _seekable(source):
                self._start = source.tell()
            else:
                # Copy once so that an unsorted chunk can be re-read; disk, not memory, holds big ones.
                spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)
                shutil.copyfileobj(source, spool, 1 << 20)
                spool.seek(0)
                self._spool = spool  # type: ignore[assignment]
        self.n_raw = 0
        suffix_source = os.fspath(source) if isinstance(source, str | os.PathLike) else (name or "")
        suffix = os.path.splitext(str(suffix_source))[1].lower()
        if suffix == ".csv":
            self.format: Format = "csv"
        elif suffix == ".npy":
            self.format = "npy"
        else:
            with self._open() as f:
                self.format = "npy" if f.read(len(NPY_MAGIC)) == NPY_MAGIC else "csv"

    def _open(self) -> BinaryIO:
        src = self._source
        if self._spool is not None:
            self._spool.seek(0)
            return cast(BinaryIO, _NoClose(self._spool))
        if isinstance(src, str | os.PathLike):
            try:
                return open(src, "rb")
            except OSError as exc:
                raise ChunkError(self.label, f"cannot open: {exc.strerror or exc}") from exc
        if isinstance(src, bytes | bytearray | memoryview):
            return io.BytesIO(src)
        src.seek(self._start)
        return cast(BinaryIO, _NoClose(src))

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def blocks(self, *, reuse: bool = True) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
        """Yield ``(timestamps, values)`` float64 blocks, in file order.

        Parameters
        ----------
        reuse : bool
            If true, the arrays may be views of a buffer that the next block overwrites (fast);
            pass ``False`` to keep the blocks.

        Raises
        ------
        ChunkError
            On any broken format rule, naming the file (and the line for CSV).
        """
        self.n_raw = 0
        with self._open() as f:
            if self.format == "npy":
                yield from self._npy_blocks(f, reuse)
            else:
                yield from self._csv_blocks(f)

    # -- .npy ---------------------------------------------------------------------------------

    def _npy_blocks(self, f: BinaryIO, reuse: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ChunkError(
                    self.label, f".npy format version {version[0]}.{version[1]} is not supported (1.0 or 2.0)"
                )
        except ChunkError:
            raise
        except (ValueError, EOFError, OSError) as exc:
            raise ChunkError(self.label, f"not a valid .npy file: {exc}") from exc
        if dtype.kind != "f" or dtype.itemsize != 8 or dtype.names is not None:
            raise ChunkError(self.label, f".npy dtype must be float64, got {dtype.str}")
        if len(shape) != 2 or shape[1] != 2:
            raise ChunkError(self.label, f".npy shape must be (N, 2) (timestamp, value), got {shape}")
        n_rows = int(shape[0])
        if n_rows == 0:
            raise ChunkError(self.label, "no data rows (.npy shape (0, 2))")
        if fortran and n_rows > 1:
            raise ChunkError(self.label, ".npy array is Fortran-ordered; save it C-ordered (np.ascontiguousarray)")
        expected = n_rows * 16
        if _seekable(f):
            here = f.tell()
            available = f.seek(0, io.SEEK_END) - here
            f.seek(here)
            if available < expected:
                raise ChunkError(
                    self.label,
                    f"truncated .npy: header declares {n_rows} rows ({expected} bytes) but only {available} bytes of data follow",
                )
            if available > expected:
                raise ChunkError(
                    self.label, f".npy has {available - expected} unexpected bytes after the {n_rows} declared rows"
                )
        native = dtype.newbyteorder("=")
        block_rows = min(_NPY_BLOCK_ROWS, n_rows)
        buf = np.empty((block_rows, 2), dtype=dtype)
        done = 0
        while done < n_rows:
            rows = min(block_rows, n_rows - done)
            if not reuse:
                buf = np.empty((rows, 2), dtype=dtype)
            view = memoryview(buf.data).cast("B")[: rows * 16]
            got = _read_into(f, view)
            if got < rows * 16:
                raise ChunkError(
                    self.label,
                    f"truncated .npy: header declares {n_rows} rows but the data ends after {done + got // 16}",
                )
            arr = buf[:rows] if dtype == native else buf[:rows].astype(native)
            done += rows
            self.n_raw = done
            yield arr[:, 0], arr[:, 1]
        if f.read(1):
            raise ChunkError(self.label, f".npy has unexpected bytes after the {n_rows} declared rows")

    # -- CSV ----------------------------------------------------------------------------------

    def _csv_blocks(self, f: BinaryIO) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raw_header = f.readline(4096)
        if not raw_header:
            raise ChunkError(self.label, "empty file: expected a header line 'timestamp,value'", line=1)
        header = self._decode(raw_header, 1).lstrip("\ufeff")
        fields = tuple(field.strip().lower() for field in header.strip().split(","))
        if fields != CSV_HEADER:
            shown = header.strip()
            shown = shown if len(shown) <= 60 else shown[:60] + "..."
            raise ChunkError(self.label, f"header must be 'timestamp,value', got {shown!r}", line=1)
        line = 2  # number of the first line in `pending`
        pending = b""
        slow = False  # set once a block needed the per-line parser (e.g. ISO timestamps)
        while True:
            data = f.read(_CSV_BLOCK_BYTES)
            final = not data
            buf = pending + data
            if not final:
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    if len(buf) > _MAX_LINE_BYTES:
                        # Without this, one endless "line" (e.g. a binary file) would be held whole in memory.
                        raise ChunkError(
                            self.label,
                            f"line longer than {_MAX_LINE_BYTES >> 20} MiB (binary data in a CSV file?)",
                            line=line,
                        )
                    pending = buf
                    continue
                buf, pending = buf[:cut], buf[cut:]
            else:
                pending = b""
            if buf:
                block, slow = self._parse_csv_block(buf, line, slow)
                line += buf.count(b"\n")
                if block.shape[0]:
                    self.n_raw += block.shape[0]
                    yield block[:, 0], block[:, 1]
            if final:
                break
        if self.n_raw == 0:
            raise ChunkError(self.label, "no data rows after the header")

    def _decode(self, raw: bytes, first_line: int) -> str:
        nul = raw.find(b"\x00")
        if nul >= 0:
            raise ChunkError(
                self.label, "binary data (NUL byte) in a CSV file", line=first_line + raw.count(b"\n", 0, nul)
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChunkError(
                self.label,
                "not UTF-8 text (binary data in a CSV file?)",
                line=first_line + raw.count(b"\n", 0, exc.start),
            ) from exc

    def _parse_csv_block(self, raw: bytes, first_line: int, slow: bool) -> tuple[np.ndarray, bool]:
        text = self._decode(raw, first_line)
        if not slow:
            try:
                # numpy's C parser; anything it refuses is re-parsed line by line for the exact error.
                arr = np.loadtxt(
                    io.StringIO(text), delimiter=",", dtype=np.float64, comments=None, ndmin=2, encoding=None
                )
                if arr.shape[0] == 0 or arr.shape[1] == 2:
                    return arr.reshape(-1, 2), False
            except ValueError:
                pass
        return self._parse_lines(text, first_line), True

    def _parse_lines(self, text: str, first_line: int) -> np.ndarray:
        out: list[tuple[float, float]] = []
        for offset, raw_line in enumerate(text.split("\n")):
            stripped = raw_line.strip()
            if not stripped:
                continue
            line = first_line + offset
            parts = stripped.split(",")
            if len(parts) != 2:
                raise ChunkError(self.label, f"expected 2 fields 'timestamp,value', got {len(parts)}", line=line)
            out.append((self._parse_time(parts[0].strip(), line), self._parse_number(parts[1].strip(), "value", line)))
        return np.array(out, dtype=np.float64).reshape(-1, 2)

    def _parse_number(self, text: str, what: str, line: int) -> float:
        if not text:
            raise ChunkError(self.label, f"{what} is empty", line=line)
        # float() also takes '1_000'; numpy's fast parser does not, so neither do we.
        if "_" not in text:
            try:
                return float(text)
            except ValueError:
                pass
        raise ChunkError(self.label, f"{what} {_shorten(text)} is not a number", line=line)

    def _parse_time(self, text: str, line: int) -> float:
        if not text:
            raise ChunkError(self.label, "timestamp is empty", line=line)
        if "_" not in text:
            try:
                return float(text)
            except ValueError:
                pass
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ChunkError(
                self.label, f"timestamp {_shorten(text)} is neither epoch seconds nor ISO 8601", line=line
            ) from None
        if stamp.tzinfo is None:
            raise ChunkError(
                self.label, f"timestamp {_shorten(text)} has no UTC offset (use 'Z' or '+hh:mm')", line=line
            )
        value = stamp.timestamp()
        return value if math.isfinite(value) else math.nan


def _shorten(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _seekable(f: object) -> bool:
    try:
        return bool(f.seekable())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _read_into(f: BinaryIO, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


class _NoClose(io.RawIOBase):
    """Wrap a caller's stream so that our ``with`` block does not close it."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return _seekable(self._inner)

    def tell(self) -> int:
        return self._inner.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._inner.readline(-1 if size is None else size)


def open_chunk(source: Source, name: str | None = None) -> ChunkReader:
    """Open ``source`` for block-wise reading (see :class:`ChunkReader`)."""
    return ChunkReader(source, name)
