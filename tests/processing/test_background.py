"""BackgroundConsumer: order, error propagation, discard."""

from __future__ import annotations

import numpy as np
import pytest

from processing.background import BackgroundConsumer


def test_blocks_arrive_in_order() -> None:
    seen: list[float] = []
    consumer = BackgroundConsumer(lambda b: seen.append(float(b[0])), depth=1)
    for i in range(100):
        consumer(np.array([float(i)]))
    consumer.close()
    assert seen == [float(i) for i in range(100)]


def test_worker_error_is_raised_by_close_and_by_the_next_call() -> None:
    def boom(block: np.ndarray) -> None:
        if block[0] == 3:
            raise ZeroDivisionError("block 3")

    consumer = BackgroundConsumer(boom)
    for i in range(5):
        try:
            consumer(np.array([float(i)]))
        except ZeroDivisionError:
            break
    with pytest.raises(ZeroDivisionError, match="block 3"):
        consumer.close()
    consumer.close()  # idempotent


def test_discard_drops_errors_and_rejects_new_blocks() -> None:
    def fail(block: np.ndarray) -> None:
        raise ZeroDivisionError("always")

    consumer = BackgroundConsumer(fail)
    consumer(np.zeros(1))
    consumer.close(discard=True)
    with pytest.raises(RuntimeError, match="closed"):
        consumer(np.zeros(1))
    with pytest.raises(ValueError, match=r"^depth must be >= 1"):
        BackgroundConsumer(print, depth=0)
