"""The encoder's stage pipeline: overlap, order, failures, slow stages,
bounded hand-offs and shutdown; first with fake stages, then wired as the
encoder wires it (batcher -> prepare -> engine -> answer) over fakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from secrets_env import with_secrets
from test_encoder_service import FakeEngine, FakeObjects, FakeStore, png, request

from facegate.core.errors import TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason
from facegate.engine.types import Face, Image
from services.encoder.batcher import Batcher, BatcherClosedError
from services.encoder.pipeline import Job, Pipeline
from services.encoder.service import Encoded, EncoderService
from services.encoder.settings import EncoderSettings

pytestmark = pytest.mark.unit

WAIT = 5.0


class Recorder:
    """Stages that log what they do and can be held or made to fail."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.hold: dict[tuple[str, int], threading.Event] = {}
        self.entered: dict[tuple[str, int], threading.Event] = {}
        self.fail: set[tuple[str, int]] = set()

    def gate(self, stage: str, batch: int) -> threading.Event:
        self.hold[(stage, batch)] = threading.Event()
        self.entered[(stage, batch)] = threading.Event()
        return self.hold[(stage, batch)]

    def stage(self, name: str) -> Any:
        def run(job: Job[int]) -> None:
            key = (name, job.items[0] // 100)
            if key in self.entered:
                self.entered[key].set()
            if key in self.hold:
                assert self.hold[key].wait(WAIT), f"{key} held too long"
            with self.lock:
                self.log.append(key)
            if key in self.fail:
                raise RuntimeError(f"{name} broke")

        return run

    def answer(self, job: Job[int]) -> list[Any]:
        with self.lock:
            self.log.append(("answer", job.items[0] // 100))
        if job.failure is not None:
            stage, exc = job.failure
            return [f"denied {i}: {stage}: {exc}" for i in job.items]
        return [f"ok {i}" for i in job.items]


def batch(n: int, size: int = 2) -> tuple[list[int], list[Future[Any]]]:
    """Batch ``n``: items n*100, n*100+1, ... (the stages read n back)."""
    return [n * 100 + k for k in range(size)], [Future() for _ in range(size)]


def make(rec: Recorder, depth: int = 1) -> Pipeline[int]:
    return Pipeline([("prepare", rec.stage("prepare")), ("engine", rec.stage("engine"))],
                    rec.answer, depth=depth)


def test_the_next_batch_is_prepared_while_one_is_in_the_engine() -> None:
    rec = Recorder()
    engine_1 = rec.gate("engine", 1)
    pipe = make(rec)
    b1, b2 = batch(1), batch(2)
    pipe.put(*b1)
    pipe.put(*b2)
    assert rec.entered[("engine", 1)].wait(WAIT)
    deadline = time.monotonic() + WAIT
    while ("prepare", 2) not in rec.log and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ("prepare", 2) in rec.log  # batch 2 fetched + decoded meanwhile
    assert ("engine", 1) not in rec.log  # batch 1 still in the engine
    engine_1.set()
    assert [f.result(WAIT) for f in b1[1] + b2[1]] == ["ok 100", "ok 101", "ok 200", "ok 201"]
    assert pipe.close()
    assert rec.log.index(("answer", 1)) < rec.log.index(("answer", 2))


def test_a_stage_raising_denies_only_its_own_batch_and_the_rest_goes_on() -> None:
    rec = Recorder()
    rec.fail = {("engine", 2), ("prepare", 4)}
    pipe = make(rec)
    batches = [batch(n) for n in range(1, 6)]
    for items, futures in batches:
        pipe.put(items, futures)
    answers = [[f.result(WAIT) for f in futures] for _, futures in batches]
    assert answers[0] == ["ok 100", "ok 101"]
    assert answers[1] == ["denied 200: engine: engine broke", "denied 201: engine: engine broke"]
    assert answers[2] == ["ok 300", "ok 301"]
    assert answers[3][0] == "denied 400: prepare: prepare broke"
    assert answers[4] == ["ok 500", "ok 501"]
    assert ("engine", 4) not in rec.log  # a failed batch skips the rest of the stages
    # every batch is answered, in the order it came in
    assert [n for stage, n in rec.log if stage == "answer"] == [1, 2, 3, 4, 5]
    assert pipe.close()


def test_a_slow_fetch_delays_neither_the_batch_ahead_nor_the_order_behind() -> None:
    rec = Recorder()
    slow = rec.gate("prepare", 2)
    pipe = make(rec, depth=2)
    b1, b2, b3 = batch(1), batch(2), batch(3)
    for b in (b1, b2, b3):
        pipe.put(*b)
    assert [f.result(WAIT) for f in b1[1]] == ["ok 100", "ok 101"]  # ahead: answered
    assert not any(f.done() for f in b2[1] + b3[1])  # behind the slow one: waits, in order
    slow.set()
    assert b3[1][0].result(WAIT) == "ok 300"
    assert [n for stage, n in rec.log if stage == "answer"] == [1, 2, 3]
    assert pipe.close()


def test_put_blocks_while_the_first_stage_and_its_queue_are_full() -> None:
    rec = Recorder()
    held = rec.gate("prepare", 1)
    pipe = make(rec, depth=1)
    pipe.put(*batch(1))  # taken by prepare, which is held
    assert rec.entered[("prepare", 1)].wait(WAIT)
    pipe.put(*batch(2))  # waits in the queue
    third = threading.Thread(target=pipe.put, args=batch(3))
    third.start()
    third.join(0.2)
    assert third.is_alive()  # bounded: the third batch is not taken in
    held.set()
    third.join(WAIT)
    assert not third.is_alive()
    assert pipe.close()


def test_a_gathering_stage_takes_every_batch_waiting_for_it() -> None:
    calls: list[list[int]] = []
    release = threading.Event()

    def engine(jobs: list[Job[int]]) -> None:
        calls.append([job.items[0] // 100 for job in jobs])
        assert release.wait(WAIT)
        if any(job.items[0] // 100 == 3 for job in jobs):
            raise RuntimeError("engine broke")

    rec = Recorder()
    pipe: Pipeline[int] = Pipeline([("prepare", rec.stage("prepare")), ("engine", engine)],
                                   rec.answer, depth=4, gather={"engine"})
    batches = [batch(n) for n in range(1, 6)]
    pipe.put(*batches[0])
    deadline = time.monotonic() + WAIT
    while not calls and time.monotonic() < deadline:
        time.sleep(0.005)
    for b in batches[1:3]:
        pipe.put(*b)  # wait while batch 1 is in the engine
    while len([k for k in rec.log if k[0] == "prepare"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    assert batches[2][1][0].result(WAIT) == "denied 300: engine: engine broke"
    for b in batches[3:]:
        pipe.put(*b)
    answers = [[f.result(WAIT) for f in futures] for _, futures in batches]
    assert calls[:2] == [[1], [2, 3]]  # the two waiting batches in one engine call
    # that call failed: both of its batches are denied, the others are not
    assert answers[0] == ["ok 100", "ok 101"]
    assert answers[1][0].startswith("denied 200") and answers[2][0].startswith("denied 300")
    assert answers[4] == ["ok 500", "ok 501"]
    assert [n for stage, n in rec.log if stage == "answer"] == [1, 2, 3, 4, 5]
    assert pipe.close()
    with pytest.raises(ValueError):
        Pipeline([("prepare", rec.stage("prepare"))], rec.answer, gather={"engine"})


def test_answer_raising_fails_the_batch_futures() -> None:
    def answer(job: Job[int]) -> list[Any]:
        raise TransientError("redis down")

    pipe: Pipeline[int] = Pipeline([], answer)
    items, futures = batch(1)
    pipe.put(items, futures)
    with pytest.raises(TransientError):
        futures[0].result(WAIT)
    assert pipe.close()
    with pytest.raises(RuntimeError):
        pipe.put(*batch(2))


def test_close_finishes_every_batch_it_holds() -> None:
    rec = Recorder()
    held = rec.gate("engine", 1)
    pipe = make(rec)
    batches = [batch(n) for n in (1, 2, 3)]
    for b in batches[:2]:
        pipe.put(*b)
    assert rec.entered[("engine", 1)].wait(WAIT)
    pipe.put(*batches[2])
    closer = threading.Thread(target=pipe.close)
    closer.start()
    held.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert all(f.result(0) .startswith("ok") for _, futures in batches for f in futures)


# ---------------------------------------------------------------- as the encoder wires it


class GatedEngine(FakeEngine):
    """The fake engine, held on demand; raises on images whose pixel (0, 0, 1) is 99."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def encode_images(self, images: Sequence[Image], *,
                      timings: dict[str, float] | None = None) -> list[list[Face]]:
        self.entered.set()
        assert self.gate.wait(WAIT)
        if any(int(img[0, 0, 1]) == 99 for img in images):
            raise RuntimeError("poisoned batch")
        return super().encode_images(images, timings=timings)


def poisoned_png() -> bytes:
    import io

    from PIL import Image as PILImage

    arr = np.full((8, 8, 3), 5, np.uint8)
    arr[0, 0, 0], arr[0, 0, 1] = 1, 99
    out = io.BytesIO()
    PILImage.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


class Encoder:
    """The encoder's batcher, pipeline and service over fakes (as app.build wires them)."""

    def __init__(self, objects: dict[str, bytes | BaseException], *, max_size: int = 4,
                 wait_s: float = 0.05, depth: int = 1) -> None:
        self.sent: list[MatchRequest] = []
        self.engine = GatedEngine()
        settings = EncoderSettings.from_env(with_secrets(env="development"))
        self.objects = FakeObjects(objects)
        self.service = EncoderService(settings, self.objects, FakeStore(),  # type: ignore[arg-type]
                                      self.engine, self.sent.append, clock=time.time)
        self.pipeline: Pipeline[EncodeRequest] = Pipeline(
            [("prepare", self.service.prepare), ("engine", self.service.engine_stage)],
            self.service.answer_job, depth=depth, gather={"engine"})
        self.batcher: Batcher[EncodeRequest, Encoded] = Batcher(
            handoff=self.pipeline.put, max_size=max_size, max_wait_s=wait_s)

    def close(self) -> None:
        self.batcher.close()
        assert self.pipeline.close()
        self.service.close()


def fresh(i: int, door: str = "front") -> EncodeRequest:
    r = request(i)
    return EncodeRequest.from_dict({**r.to_dict(), "door": door,
                                    "stamps": {"uploaded": time.time()}})


def test_engine_failure_denies_only_the_uploads_of_its_batch() -> None:
    good = [fresh(i) for i in range(4)]
    bad = [fresh(10 + i) for i in range(2)]
    objects: dict[str, bytes | BaseException] = {r.key: png(1, 1) for r in good + bad}
    objects[bad[0].key] = poisoned_png()
    enc = Encoder(objects, max_size=2)
    futures = [enc.batcher.submit(r) for r in good[:2]]
    for f in futures:
        f.result(WAIT)
    futures += [enc.batcher.submit(r) for r in bad]
    for f in futures[2:]:
        f.result(WAIT)
    futures += [enc.batcher.submit(r) for r in good[2:]]
    results = [f.result(WAIT) for f in futures]
    enc.close()
    errors = {m.upload_id: m.error for m in enc.sent}
    assert len(enc.sent) == 6
    assert all(errors[r.upload_id] is None for r in good)
    assert all(errors[r.upload_id] is Reason.INTERNAL_ERROR for r in bad)
    assert all(isinstance(r, Encoded) for r in results)


def test_a_stage_raising_unexpectedly_denies_its_batch_with_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reqs = [fresh(i) for i in range(4)]
    enc = Encoder({r.key: png(1, 1) for r in reqs}, max_size=2)
    decode = enc.service.decode
    calls = []

    def flaky(batch: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("no room for pixels")
        decode(batch)

    monkeypatch.setattr(enc.service, "decode", flaky)
    first = [enc.batcher.submit(r) for r in reqs[:2]]
    [f.result(WAIT) for f in first]
    second = [enc.batcher.submit(r) for r in reqs[2:]]
    [f.result(WAIT) for f in second]
    enc.close()
    by_id = {m.upload_id: m for m in enc.sent}
    assert [by_id[r.upload_id].error for r in reqs] == [
        Reason.INTERNAL_ERROR, Reason.INTERNAL_ERROR, None, None]
    assert "encode_start" in by_id[reqs[0].upload_id].stamps


class SlowObjects(FakeObjects):
    """The object store, with one object whose GET hangs until released."""

    def __init__(self, objects: dict[str, bytes | BaseException], slow_key: str) -> None:
        super().__init__(objects)
        self.slow_key = slow_key
        self.release = threading.Event()
        self.stuck = threading.Event()

    def get(self, key: str, max_bytes: int) -> bytes:
        if key == self.slow_key:
            self.stuck.set()
            assert self.release.wait(WAIT)
        return super().get(key, max_bytes)


def test_a_slow_fetch_holds_back_only_the_batches_behind_it() -> None:
    reqs = [fresh(i) for i in range(6)]
    objects: dict[str, bytes | BaseException] = {r.key: png(1, 1) for r in reqs}
    enc = Encoder(objects, max_size=2, wait_s=0.001)
    slow = SlowObjects(objects, reqs[2].key)
    enc.service.objects = slow
    enc.engine.gate.clear()
    enc.engine.entered.clear()
    first = [enc.batcher.submit(r) for r in reqs[:2]]
    assert enc.engine.entered.wait(WAIT)  # batch 1 in the engine
    second = [enc.batcher.submit(r) for r in reqs[2:4]]
    assert slow.stuck.wait(WAIT)  # batch 2 hangs in its fetch meanwhile
    third = [enc.batcher.submit(r) for r in reqs[4:]]
    enc.engine.gate.set()
    # the batch ahead is answered although the fetch behind it hangs
    assert all(isinstance(f.result(WAIT), Encoded) for f in first)
    time.sleep(0.1)
    assert not any(f.done() for f in second + third)  # behind it, in order: nothing overtakes
    assert [m.upload_id for m in enc.sent] == [r.upload_id for r in reqs[:2]]
    slow.release.set()
    assert all(isinstance(f.result(WAIT), Encoded) for f in second + third)
    enc.close()
    assert [m.upload_id for m in enc.sent] == [r.upload_id for r in reqs]
    assert all(m.error is None for m in enc.sent)


def test_decisions_of_a_door_leave_in_the_order_the_uploads_came() -> None:
    reqs = [fresh(i, door=f"door{i % 3}") for i in range(30)]
    enc = Encoder({r.key: png(1, 1) for r in reqs}, max_size=4, wait_s=0.002)
    futures = []
    for r in reqs:
        futures.append(enc.batcher.submit(r))
        time.sleep(0.001)
    for f in futures:
        f.result(WAIT)
    enc.close()
    for door in ("door0", "door1", "door2"):
        sent = [m.upload_id for m in enc.sent if m.door == door]
        assert sent == [r.upload_id for r in reqs if r.door == door]
    assert len(enc.batcher.stats.sizes) > 1  # several batches were in flight


def test_shutdown_mid_batch_answers_what_was_taken_and_refuses_the_rest() -> None:
    reqs = [fresh(i) for i in range(7)]
    enc = Encoder({r.key: png(1, 1) for r in reqs}, max_size=2, wait_s=0.001)
    enc.engine.gate.clear()
    enc.engine.entered.clear()
    taken = [enc.batcher.submit(r) for r in reqs[:2]]
    assert enc.engine.entered.wait(WAIT)  # batch 1 is in the engine
    taken += [enc.batcher.submit(r) for r in reqs[2:6]]  # prepared / queued behind it
    closer = threading.Thread(target=enc.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(BatcherClosedError) as refused:
        enc.batcher.submit(reqs[6]).result(WAIT)
    assert isinstance(refused.value, TransientError)  # the task retries: redelivered
    enc.engine.gate.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    # every upload taken before the shutdown was answered, none twice
    assert all(isinstance(f.result(0), Encoded) for f in taken)
    assert sorted(m.upload_id for m in enc.sent) == sorted(r.upload_id for r in reqs[:6])


def test_batches_waiting_for_the_engine_share_its_call_and_keep_their_answers() -> None:
    reqs = [fresh(i) for i in range(6)]
    objects: dict[str, bytes | BaseException] = {r.key: png(1, 1 + i % 2)
                                                  for i, r in enumerate(reqs)}
    enc = Encoder(objects, max_size=2, wait_s=0.001, depth=3)
    enc.engine.gate.clear()
    enc.engine.entered.clear()
    first = [enc.batcher.submit(r) for r in reqs[:2]]
    assert enc.engine.entered.wait(WAIT)
    rest = []
    for r in reqs[2:]:
        rest.append(enc.batcher.submit(r))
        time.sleep(0.02)  # separate batches of the batcher
    time.sleep(0.1)
    enc.engine.gate.set()
    results = [f.result(WAIT) for f in first + rest]
    enc.close()
    assert enc.engine.batches[0] == 2 and sum(enc.engine.batches) == 6
    assert len(enc.engine.batches) < len(enc.batcher.stats.sizes)  # gathered
    assert [r.faces for r in results if isinstance(r, Encoded)] == [1 + i % 2 for i in range(6)]
    assert [m.upload_id for m in enc.sent] == [r.upload_id for r in reqs]


def test_pixels_are_let_go_once_the_engine_is_done() -> None:
    reqs = [fresh(1)]
    enc = Encoder({reqs[0].key: png(1, 1)})
    seen: list[Any] = []
    answer = enc.service.answer

    def spy(batch: Any) -> list[Encoded | BaseException]:
        seen.append([img.size for img in batch.images])
        return answer(batch)

    enc.service.answer = spy  # type: ignore[method-assign]
    enc.batcher.submit(reqs[0]).result(WAIT)
    enc.close()
    assert seen == [[0]]
