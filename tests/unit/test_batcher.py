"""The micro-batcher: sizes, waiting, per-item failures, closing."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from services.encoder.batcher import Batcher, BatcherClosedError

pytestmark = pytest.mark.unit


def test_fills_a_batch_up_to_max_size() -> None:
    seen: list[list[int]] = []
    gate = threading.Event()

    def process(items: Sequence[int]) -> list[int]:
        gate.wait(5)
        seen.append(list(items))
        return [i * 10 for i in items]

    b: Batcher[int, int] = Batcher(process, max_size=4, max_wait_s=0.5)
    first = b.submit(0)  # taken alone... or with the next ones if they arrive in time
    time.sleep(0.05)
    futures = [b.submit(i) for i in range(1, 9)]
    gate.set()
    assert [f.result(5) for f in futures] == [i * 10 for i in range(1, 9)]
    assert first.result(5) == 0
    b.close()
    assert all(len(batch) <= 4 for batch in seen)
    assert sum(len(batch) for batch in seen) == 9
    assert max(len(batch) for batch in seen) == 4
    assert b.stats.items == 9 and b.stats.batches == len(seen)


def test_a_lone_item_waits_at_most_max_wait() -> None:
    b: Batcher[int, int] = Batcher(lambda xs: list(xs), max_size=64, max_wait_s=0.05)
    start = time.monotonic()
    assert b.submit(7).result(5) == 7
    elapsed = time.monotonic() - start
    b.close()
    assert elapsed < 1.0
    assert b.stats.sizes == [1]


def test_items_arriving_within_the_wait_share_a_batch() -> None:
    b: Batcher[int, int] = Batcher(lambda xs: list(xs), max_size=64, max_wait_s=0.5)
    futures = [b.submit(i) for i in range(5)]
    assert [f.result(5) for f in futures] == list(range(5))
    b.close()
    assert b.stats.sizes == [5]


def test_one_failed_item_fails_alone() -> None:
    def process(items: Sequence[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {i}") if i == 2 else i for i in items]

    b: Batcher[int, int] = Batcher(process, max_size=8, max_wait_s=0.2)
    futures = [b.submit(i) for i in range(4)]
    assert futures[0].result(5) == 0 and futures[3].result(5) == 3
    with pytest.raises(ValueError, match="bad 2"):
        futures[2].result(5)
    b.close()


def test_a_crashing_process_fails_every_waiter_and_the_thread_goes_on() -> None:
    calls = 0

    def process(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("engine exploded")
        return list(items)

    b: Batcher[int, int] = Batcher(process, max_size=8, max_wait_s=0.1)
    futures = [b.submit(i) for i in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="exploded"):
            f.result(5)
    assert b.submit(42).result(5) == 42
    b.close()


def test_wrong_result_count_is_an_error_not_a_hang() -> None:
    b: Batcher[int, int] = Batcher(lambda xs: [1], max_size=8, max_wait_s=0.1)
    futures = [b.submit(i) for i in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="3"):
            f.result(5)
    b.close()


def test_closed_batcher_refuses_new_items() -> None:
    b: Batcher[int, int] = Batcher(lambda xs: list(xs), max_size=2, max_wait_s=0.0)
    assert b.submit(1).result(5) == 1
    b.close()
    with pytest.raises(BatcherClosedError):
        b.submit(2)


@pytest.mark.parametrize(("size", "wait"), [(0, 0.1), (4, -1.0)])
def test_bad_settings(size: int, wait: float) -> None:
    with pytest.raises(ValueError):
        Batcher(lambda xs: list(xs), max_size=size, max_wait_s=wait)
