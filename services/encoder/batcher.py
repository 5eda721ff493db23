"""Micro-batching: many task threads hand in one item each, one thread runs
them as a batch.

::

    batcher = Batcher(process, max_size=16, max_wait_s=0.015)
    result = batcher.submit(item).result(timeout=30)   # from any thread
    batcher.close()

The worker thread takes the first waiting item, then keeps collecting until
it holds ``max_size`` items or ``max_wait_s`` has passed since that first
item arrived, and calls ``process(items)`` once. ``process`` returns one
result per item, in order; each submitter's future gets its own result, or
the exception ``process`` raised (every future of that batch gets it). A
result that is itself an exception instance is set as that future's
exception, so one bad item can fail alone.

With ``handoff`` instead of ``process`` the batch and its futures are handed
on (``handoff(items, futures)``, e.g. :meth:`services.encoder.pipeline.
Pipeline.put`), which completes the futures later; a handoff that blocks
holds the worker thread, so items queue and the next batch is fuller.
``on_batch(size, wait_s)``, when given, hears of each batch as it is formed
(how many items, how long it was collected: the encoder's metrics).

After :meth:`Batcher.close` a submit raises :class:`BatcherClosedError`, a
transient error: the task retries, so its message goes back to the broker
for another worker (nothing is lost by a shutdown).

Pure threading, no Celery and no TensorFlow: unit-tested with a fake
``process``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from facegate.core.errors import TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class BatcherClosedError(TransientError):
    """``submit`` after ``close`` (the worker is stopping: retry elsewhere)."""


@dataclass
class BatchStats:
    """Counters a benchmark or a log line can read."""

    batches: int = 0
    items: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def mean_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class Batcher(Generic[T, R]):
    """Collects submitted items into batches for one processing thread."""

    def __init__(
        self,
        process: Callable[[Sequence[T]], Sequence[R | BaseException]] | None = None,
        *,
        handoff: Callable[[list[T], list[Future[R]]], None] | None = None,
        max_size: int,
        max_wait_s: float,
        name: str = "batcher",
        clock: Callable[[], float] = time.monotonic,
        keep_sizes: int = 10_000,
        on_batch: Callable[[int, float], object] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        if (process is None) == (handoff is None):
            raise ValueError("give exactly one of process and handoff")
        self._process = process
        self._handoff = handoff
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._keep_sizes = keep_sizes
        self._on_batch = on_batch
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self.stats = BatchStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue ``item``; the future completes when its batch has run."""
        if self._closed.is_set():
            raise BatcherClosedError("the batcher is closed")
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def close(self, timeout: float | None = 10.0) -> None:
        """Run what is queued, then stop the thread."""
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(_STOP)
        self._thread.join(timeout)

    # --- the processing thread -------------------------------------------------

    def _collect(self, first: tuple[T, Future[R]]) -> tuple[list[tuple[T, Future[R]]], bool]:
        """The batch that starts with ``first``; ``True`` when a stop was seen."""
        batch = [first]
        deadline = self._clock() + self.max_wait_s
        while len(batch) < self.max_size:
            left = deadline - self._clock()
            try:
                entry = self._queue.get_nowait() if left <= 0 else self._queue.get(timeout=left)
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.append(entry)  # type: ignore[arg-type]
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            entry = self._queue.get()
            if entry is _STOP:
                break
            began = self._clock()
            batch, stopping = self._collect(entry)  # type: ignore[arg-type]
            if self._on_batch is not None:
                self._on_batch(len(batch), self._clock() - began)
            self._run_batch(batch)
        # whatever is still queued after the stop marker is refused, not lost silently
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is not _STOP:
                pending: Future[R] = entry[1]  # type: ignore[index]
                pending.set_exception(BatcherClosedError("the batcher closed"))

    def _run_batch(self, batch: list[tuple[T, Future[R]]]) -> None:
        items = [item for item, _ in batch]
        futures = [future for _, future in batch]
        self.stats.batches += 1
        self.stats.items += len(items)
        if len(self.stats.sizes) < self._keep_sizes:
            self.stats.sizes.append(len(items))
        try:
            if self._handoff is not None:
                self._handoff(items, futures)
                return
            assert self._process is not None
            results = list(self._process(items))
            if len(results) != len(items):
                raise RuntimeError(f"process returned {len(results)} results for {len(items)}")
        except BaseException as exc:  # every waiter must hear about it
            log.exception("batch of %d failed", len(items))
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


__all__ = ["BatchStats", "Batcher", "BatcherClosedError"]
