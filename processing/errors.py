"""The error raised for bad chunk content."""

from __future__ import annotations

__all__ = ["ChunkError"]


class ChunkError(ValueError):
    """A chunk's content broke a rule.

    ``str()`` is one line: ``"<source>: line <n>: <reason>"`` (or without the line part when
    the line is unknown or the format has no lines).

    Attributes
    ----------
    source : str
        File path or chunk name.
    line : int or None
        1-based CSV line number when known.
    reason : str
        What is wrong, naming the rule.
    """

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        # One line, always: a reason quoting file content must not break it.
        self.reason = " ".join(reason.split())
        where = f"{source}: line {line}" if line is not None else source
        super().__init__(f"{where}: {self.reason}")
