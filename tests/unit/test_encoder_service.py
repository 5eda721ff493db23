"""The encoder's batch logic with fakes (no model, no Redis, no S3)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from secrets_env import with_secrets

from facegate.adapters.replies import parse_reply
from facegate.core.errors import ImageError, StoreUnavailableError, TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.engine.types import Box, Face, Image
from services.encoder.pipeline import Job
from services.encoder.service import Encoded, EncoderService
from services.encoder.settings import EncoderSettings

pytestmark = pytest.mark.unit

DIM = 128


def png(value: int, faces: int) -> bytes:
    """A tiny image; the fake engine reads the face count from pixel (0, 0)."""
    arr = np.full((8, 8, 3), value, np.uint8)
    arr[0, 0, 0] = faces
    out = io.BytesIO()
    PILImage.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


class FakeObjects:
    def __init__(self, objects: dict[str, bytes | BaseException]) -> None:
        self.objects = objects

    def get(self, key: str, max_bytes: int) -> bytes:
        value = self.objects.get(key)
        if value is None:
            raise ImageError(f"object {key!r} does not exist")
        if isinstance(value, BaseException):
            raise value
        if len(value) > max_bytes:
            raise ImageError("too large")
        return value


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.probes: dict[str, tuple[np.ndarray[Any, Any], str, int]] = {}
        self.replies: dict[str, bytes] = {}
        self.fail = fail

    def put_probe(self, upload_id: str, encodings: Any, model_id: str, *, ttl_s: int,
                  boxes: Any = None, dim: int | None = None) -> None:
        if self.fail:
            raise TransientError("redis down")
        arr = np.asarray(encodings, np.float32)
        assert boxes is not None and len(boxes) == arr.shape[0]
        self.probes[upload_id] = (arr, model_id, ttl_s)

    def push_reply(self, upload_id: str, payload: bytes) -> None:
        self.replies[upload_id] = payload


class FakeEngine:
    model_id = "fake-model"
    dimension = DIM

    def __init__(self, explode: bool = False) -> None:
        self.batches: list[int] = []
        self.explode = explode

    def encode_images(self, images: Sequence[Image], *,
                      timings: dict[str, float] | None = None) -> list[list[Face]]:
        if self.explode:
            raise RuntimeError("out of memory")
        self.batches.append(len(images))
        if timings is not None:
            timings["detected"] = timings["embedded"] = 1.0
        out = []
        for img in images:
            n = int(img[0, 0, 0])
            faces = []
            for k in range(n):
                enc = np.zeros(DIM, np.float32)
                enc[k] = 1.0
                faces.append(Face(Box(0, 0, 100, 100, 0.99), np.zeros((5, 2), np.float32),
                                  100.0, enc))
            out.append(faces)
        return out

    def embed_chips(self, chips: Any) -> Any:  # pragma: no cover - unused here
        raise NotImplementedError


def request(i: int, kind: UploadKind = UploadKind.ACCESS) -> EncodeRequest:
    uid = f"{i:032x}"
    if kind is UploadKind.ENROLL:
        return EncodeRequest(upload_id=uid, kind=kind, bucket="b", key=f"enroll/p/{uid}.png",
                             person="alice", stamps={"uploaded": 1.0})
    return EncodeRequest(upload_id=uid, kind=kind, bucket="b", key=f"uploads/d/c/{uid}.png",
                         door="front", camera="cam1", badge="alice",
                         stamps={"uploaded": 1.0, "ingested": 1.5})


def make(objects: dict[str, bytes | BaseException], *, store: FakeStore | None = None,
         engine: FakeEngine | None = None, send_fails: bool = False, now: float = 2.0
         ) -> tuple[EncoderService, FakeStore, FakeEngine, list[MatchRequest]]:
    sent: list[MatchRequest] = []
    store = store or FakeStore()
    engine = engine or FakeEngine()

    def send(m: MatchRequest) -> None:
        if send_fails:
            raise ConnectionError("broker down")
        sent.append(m)

    settings = EncoderSettings.from_env(with_secrets(env="development"))
    service = EncoderService(settings, FakeObjects(objects), store,  # type: ignore[arg-type]
                             engine, send, clock=lambda: now)
    return service, store, engine, sent


def test_a_mixed_batch_is_one_engine_call_and_every_upload_is_answered() -> None:
    reqs = [request(i) for i in range(5)]
    objects: dict[str, bytes | BaseException] = {
        reqs[0].key: png(10, 1),
        reqs[1].key: png(20, 0),
        reqs[2].key: png(30, 2),
        reqs[3].key: png(40, 1)[:30],          # truncated
        # reqs[4]: missing object
    }
    service, store, engine, sent = make(objects)
    results = service.process_batch(reqs)
    assert engine.batches == [3]  # the three decodable images, together
    assert [r.faces if isinstance(r, Encoded) else None for r in results] == [1, 0, 2, 0, 0]
    by_id = {m.upload_id: m for m in sent}
    assert len(sent) == 5
    assert by_id[reqs[0].upload_id].error is None and by_id[reqs[0].upload_id].faces == 1
    assert by_id[reqs[1].upload_id].faces == 0 and by_id[reqs[1].upload_id].error is None
    assert by_id[reqs[2].upload_id].faces == 2
    assert by_id[reqs[3].upload_id].error is Reason.BAD_IMAGE
    assert by_id[reqs[4].upload_id].error is Reason.BAD_IMAGE
    assert store.probes[reqs[0].upload_id][0].shape == (1, DIM)
    assert store.probes[reqs[1].upload_id][0].shape == (0, DIM)
    assert store.probes[reqs[2].upload_id][0].shape == (2, DIM)
    assert reqs[3].upload_id not in store.probes
    first = by_id[reqs[0].upload_id]
    assert first.badge == "alice" and first.door == "front" and first.model_id == "fake-model"
    for stage in ("uploaded", "ingested", "encode_start", "fetched", "decoded", "detected",
                  "embedded"):
        assert stage in first.stamps


def test_store_outage_comes_back_as_a_transient_error_for_retry() -> None:
    reqs = [request(1), request(2)]
    objects: dict[str, bytes | BaseException] = {
        reqs[0].key: StoreUnavailableError("s3 down"),
        reqs[1].key: png(1, 1),
    }
    service, _, _, sent = make(objects)
    results = service.process_batch(reqs)
    assert isinstance(results[0], StoreUnavailableError)
    assert isinstance(results[1], Encoded)
    assert [m.upload_id for m in sent] == [reqs[1].upload_id]


def test_redis_outage_and_broker_outage_are_transient() -> None:
    reqs = [request(1)]
    service, _, _, sent = make({reqs[0].key: png(1, 1)}, store=FakeStore(fail=True))
    assert isinstance(service.process_batch(reqs)[0], TransientError) and not sent
    service, _, _, sent = make({reqs[0].key: png(1, 1)}, send_fails=True)
    assert isinstance(service.process_batch(reqs)[0], TransientError)


def test_engine_failure_denies_the_whole_batch_with_internal_error() -> None:
    reqs = [request(1), request(2)]
    objects: dict[str, bytes | BaseException] = {r.key: png(1, 1) for r in reqs}
    service, store, _, sent = make(objects, engine=FakeEngine(explode=True))
    service.process_batch(reqs)
    assert [m.error for m in sent] == [Reason.INTERNAL_ERROR, Reason.INTERNAL_ERROR]
    assert not store.probes


def test_enrolment_gets_a_reply_with_the_encodings_and_no_match() -> None:
    reqs = [request(1, UploadKind.ENROLL), request(2, UploadKind.ENROLL)]
    objects: dict[str, bytes | BaseException] = {reqs[0].key: png(5, 1), reqs[1].key: b"junk"}
    service, store, _, sent = make(objects)
    service.process_batch(reqs)
    assert not sent
    ok = parse_reply(store.replies[reqs[0].upload_id])
    assert ok.error is None and ok.faces == 1 and ok.model_id == "fake-model"
    assert ok.encodings[0, 0] == 1.0 and ok.encodings.shape == (1, DIM)
    bad = parse_reply(store.replies[reqs[1].upload_id])
    assert bad.error == "bad_image" and bad.faces == 0 and "not an image" in bad.detail


def test_oversized_object_is_a_bad_image() -> None:
    reqs = [request(1)]
    service, _, _, sent = make({reqs[0].key: b"x" * (11 * 1024 * 1024)})
    service.process_batch(reqs)
    assert sent[0].error is Reason.BAD_IMAGE


def test_uploads_past_the_deadline_are_not_encoded_but_answered() -> None:
    fresh, stale = request(1), request(2)
    fresh = EncodeRequest.from_dict({**fresh.to_dict(), "stamps": {"uploaded": 55.0}})
    enrol = request(3, UploadKind.ENROLL)  # uploaded at 1.0: enrolments have no deadline
    objects: dict[str, bytes | BaseException] = {
        r.key: png(1, 1) for r in (fresh, stale, enrol)
    }
    service, store, engine, sent = make(objects, now=60.0)  # stale: uploaded 1.0, 59 s ago
    service.process_batch([fresh, stale, enrol])
    assert engine.batches == [2]  # the fresh upload and the enrolment (no deadline)
    by_id = {m.upload_id: m for m in sent}
    assert by_id[stale.upload_id].error is Reason.TIMEOUT
    assert by_id[fresh.upload_id].error is None
    assert stale.upload_id not in store.probes
    assert parse_reply(store.replies[enrol.upload_id]).faces == 1


def test_the_early_skip_uses_the_matchers_freshness_rule() -> None:
    """Written in the future beyond the skew, or with no written-at stamp at
    all: the matcher would say timeout, so the encoder does not fetch it."""
    base = request(1).to_dict()
    future = EncodeRequest.from_dict({**base, "upload_id": f"{7:032x}",
                                      "stamps": {"uploaded": 60.0 + 2.5}})
    unknown = EncodeRequest.from_dict({**base, "upload_id": f"{8:032x}",
                                       "stamps": {"ingested": 59.9}})
    slightly_ahead = EncodeRequest.from_dict({**base, "upload_id": f"{9:032x}",
                                              "stamps": {"uploaded": 61.0}})
    objects: dict[str, bytes | BaseException] = {base["key"]: png(1, 1)}
    service, _store, engine, sent = make(objects, now=60.0)  # skew allowed: 2 s (default)
    service.process_batch([future, unknown, slightly_ahead])
    assert engine.batches == [1]
    by_id = {m.upload_id: m.error for m in sent}
    assert by_id == {future.upload_id: Reason.TIMEOUT, unknown.upload_id: Reason.TIMEOUT,
                     slightly_ahead.upload_id: None}


def test_uploads_gone_stale_while_waiting_for_the_engine_are_not_encoded() -> None:
    """Under load a prepared batch waits for the engine (issue 12's pipeline):
    the same freshness rule is applied again when the engine takes it, on
    the written-at stamp, so the engine's time goes to fresh uploads."""
    early = EncodeRequest.from_dict({**request(1).to_dict(), "stamps": {"uploaded": 50.0}})
    late = EncodeRequest.from_dict({**request(2).to_dict(), "stamps": {"uploaded": 55.0}})
    enrol = request(3, UploadKind.ENROLL)  # enrolments have no deadline
    objects: dict[str, bytes | BaseException] = {
        r.key: png(1, 1) for r in (early, late, enrol)
    }
    service, store, engine, sent = make(objects)
    clock = [59.0]  # prepared at 59: both fresh (deadline 10 s)
    service.clock = lambda: clock[0]
    job: Job[EncodeRequest] = Job([early, late, enrol], [])
    service.prepare(job)
    assert job.value.expired == [False, False, False]
    clock[0] = 61.0  # the engine takes it at 61: `early` (written at 50) is 11 s old
    service.engine_stage([job])
    assert engine.batches == [2]
    by_id = {m.upload_id: m for m in service.answer_job(job) if isinstance(m, Encoded)}
    assert by_id[early.upload_id].error is Reason.TIMEOUT
    assert by_id[late.upload_id].error is None and by_id[enrol.upload_id].error is None
    assert early.upload_id not in store.probes and late.upload_id in store.probes
    assert [m.error for m in sent] == [Reason.TIMEOUT, None]
    assert sent[0].stamps["engine_start"] == 61.0  # it did reach the engine stage
