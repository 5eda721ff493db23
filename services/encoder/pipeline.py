"""Stages of a batch in their own threads, so batches overlap.

::

    pipeline = Pipeline([("prepare", prepare), ("engine", engine)], answer,
                        gather={"engine"})
    pipeline.put(items, futures)      # from the batcher's thread; blocks while full
    pipeline.close()                  # runs what it holds, then stops

A batch (a :class:`Job`) goes through the stages in order, one thread per
stage, each stage taking the next batch as soon as it has handed the last one
on: while one batch is in the engine the next is fetched and decoded, and the
one before is being answered. Between two stages sits a queue of at most
``depth`` batches, and :meth:`Pipeline.put` blocks while the first stage is
busy and its queue full (the batcher meanwhile gathers the next, larger,
batch), so what is held is bounded: each stage works on one batch (a
gathering stage on at most ``depth + 1``) with at most ``depth`` waiting
before it. For the encoder, decoded pixels exist from ``prepare`` to the end
of ``engine`` only: at most ``2 x depth + 2`` batches (6 by default; 96
uploads of 640x480 snapshots are 88 MB). Each upload's pixels are bounded
by :mod:`facegate.engine.images` (16.8 MP, 48 MiB; larger JPEGs decoded at
1/2-1/8, bombs refused from the header), so the worst case at the defaults
is 6 x 16 x 48 MiB = 4.5 GiB: size the batch and the depth to the host when
cameras send large photos.

Order: every stage is one thread reading a FIFO queue, so batches leave in the
order they came in; ``answer`` (the last stage) runs for every batch in that
order, even for a batch that failed earlier, so the answers of a door's
uploads go out in the order the uploads were taken.

A stage named in ``gather`` takes every batch waiting in its queue at once
(``fn(jobs)``, in order) instead of one (``fn(job)``): the encoder's engine
runs one call over them, so under load its calls grow instead of its queue.

Failures stay with their batch: when a stage raises, the batch (the batches
of that call, for a gathering stage) skips the remaining stages
(``job.failure`` names the stage and the error) and goes straight to
``answer``, which answers each of its items (the encoder denies them with
``internal_error``); the other batches, before and after, go on. Only when
``answer`` itself raises do the batch's futures get the exception.

Pure threading: unit-tested with fakes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP = object()


@dataclass
class Job(Generic[T]):
    """One batch on its way through the stages."""

    items: list[T]
    futures: list[Future[Any]]
    value: Any = None
    """What the stages build up (the encoder's :class:`~services.encoder.service.Batch`)."""
    failure: tuple[str, BaseException] | None = None
    """The stage that raised, and what."""
    results: Sequence[Any] = field(default_factory=list)


Stage = Callable[[Job[T]], None]
GatheringStage = Callable[[list[Job[T]]], None]


class Pipeline(Generic[T]):
    """Threads running ``stages`` in order, then ``answer``, for every job."""

    def __init__(
        self,
        stages: Sequence[tuple[str, Stage[T] | GatheringStage[T]]],
        answer: Callable[[Job[T]], Sequence[Any]],
        *,
        depth: int = 1,
        gather: frozenset[str] | set[str] = frozenset(),
        name: str = "pipeline",
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._answer = answer
        self._closed = threading.Event()
        self._put_lock = threading.Lock()
        names = [stage_name for stage_name, _ in stages] + ["answer"]
        self._queues: list[queue.Queue[object]] = [queue.Queue(maxsize=depth) for _ in names]
        self._threads: list[threading.Thread] = []
        unknown = set(gather) - set(names[:-1])
        if unknown:
            raise ValueError(f"gather names no stage: {sorted(unknown)}")
        steps: list[Callable[[list[Job[T]]], None]] = [
            self._guarded(stage_name, fn, stage_name in gather) for stage_name, fn in stages
        ]
        steps.append(self._finish)
        for k, (stage_name, step) in enumerate(zip(names, steps, strict=True)):
            downstream = self._queues[k + 1] if k + 1 < len(self._queues) else None
            thread = threading.Thread(
                target=self._loop,
                args=(self._queues[k], step, downstream, stage_name in gather),
                name=f"{name}-{stage_name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def put(self, items: Sequence[T], futures: Sequence[Future[Any]]) -> None:
        """Hand a batch in; blocks while the first stage and its queue are full."""
        with self._put_lock:
            if self._closed.is_set():
                raise RuntimeError("the pipeline is closed")
            self._queues[0].put(Job(list(items), list(futures)))

    def close(self, timeout: float | None = 30.0) -> bool:
        """Let every batch already handed in finish, then stop the threads.
        True when they all stopped within ``timeout``."""
        with self._put_lock:
            if not self._closed.is_set():
                self._closed.set()
                self._queues[0].put(_STOP)
        for thread in self._threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    # --- the stage threads ---------------------------------------------------------

    @staticmethod
    def _guarded(
        stage_name: str, fn: Stage[T] | GatheringStage[T], gathers: bool
    ) -> Callable[[list[Job[T]]], None]:
        def run(jobs: list[Job[T]]) -> None:
            live = [job for job in jobs if job.failure is None]  # failed: on to answer
            if not live:
                return
            try:
                if gathers:
                    fn(live)  # type: ignore[arg-type]
                else:
                    fn(live[0])  # type: ignore[arg-type]
            except Exception as exc:  # the batch fails alone
                log.exception(
                    "stage %s failed on %d item(s)", stage_name, sum(len(j.items) for j in live)
                )
                for job in live:
                    job.failure = (stage_name, exc)

        return run

    @staticmethod
    def _loop(
        inbox: queue.Queue[object],
        step: Callable[[list[Job[T]]], None],
        downstream: queue.Queue[object] | None,
        gathers: bool,
    ) -> None:
        while True:
            jobs: list[Any] = [inbox.get()]
            while gathers and jobs[-1] is not _STOP:
                try:
                    jobs.append(inbox.get_nowait())
                except queue.Empty:
                    break
            stop = jobs[-1] is _STOP
            work = jobs[:-1] if stop else jobs
            if work:
                step(work)
            for job in jobs:
                if downstream is not None:
                    downstream.put(job)
            if stop:
                return

    def _finish(self, jobs: list[Job[T]]) -> None:
        (job,) = jobs  # answer takes one batch at a time
        try:
            results = list(self._answer(job))
            if len(results) != len(job.items):
                raise RuntimeError(f"answer gave {len(results)} results for {len(job.items)}")
        except BaseException as exc:  # every waiter must hear about it
            log.exception("answering a batch of %d failed", len(job.items))
            for future in job.futures:
                if not future.done():
                    future.set_exception(exc)
            return
        job.results = results
        for future, result in zip(job.futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


__all__ = ["Job", "Pipeline"]
