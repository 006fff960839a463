"""processing.allocator: argument checks, and that it applies on glibc Linux."""

from __future__ import annotations

import platform
import sys

import pytest

from processing.allocator import keep_freed_memory


def test_applies_on_glibc_linux() -> None:
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected


@pytest.mark.parametrize(
    ("kwargs", "setting"), [({"mmap_threshold": 0}, "mmap_threshold"), ({"trim_threshold": -1}, "trim_threshold")]
)
def test_invalid_thresholds_name_the_setting(kwargs: dict[str, int], setting: str) -> None:
    with pytest.raises(ValueError, match=f"^{setting} must be > 0"):
        keep_freed_memory(**kwargs)
