"""Ingest carries the approach id (several frames of one passage) from the
presign request or the direct upload, through the claim, into the encode
request; a malformed approach id is refused before anything is stored."""

from __future__ import annotations

import json

import pytest

from facegate.adapters.memory_objects import MemoryObjectStore
from facegate.adapters.memory_store import MemoryStore
from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import EncodeRequest
from services.ingest.service import IngestApp
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

CAM = "camera-token-for-unit-tests-0123"
HOOK = "webhook-token-for-unit-tests-0123"
BUCKET = "facegate-uploads"


def app() -> tuple[IngestApp, MemoryStore, list[EncodeRequest]]:
    settings = IngestSettings.from_env(
        {"FACEGATE_CAMERA_TOKEN": CAM, "FACEGATE_WEBHOOK_TOKEN": HOOK}
    )
    claims: MemoryStore = MemoryStore()
    sent: list[EncodeRequest] = []
    ingest = IngestApp(settings, MemoryObjectStore(BUCKET), claims, sent.append)
    return ingest, claims, sent


def body(key: str) -> bytes:
    return json.dumps(
        {"event_type": "create", "key": f"/buckets/{BUCKET}/{key}", "message": {"new_entry": {}}}
    ).encode()


def test_presign_binds_the_approach_to_each_frame() -> None:
    ingest, claims, sent = app()
    approach = keys.new_upload_id()
    tickets = [ingest.presign("lobby", "cam1", None, CAM, approach=approach) for _ in range(3)]
    for ticket in tickets:
        claim = claims.get_claim(ticket.upload_id)
        assert claim is not None and claim.approach == approach
        ingest.handle_event(body(ticket.key), HOOK)
    assert [r.approach for r in sent] == [approach] * 3
    assert len({r.upload_id for r in sent}) == 3  # one upload, one decision, per frame
    single = ingest.presign("lobby", "cam1", None, CAM)
    ingest.handle_event(body(single.key), HOOK)
    assert sent[-1].approach is None


def test_direct_upload_carries_the_approach() -> None:
    ingest, _, sent = app()
    approach = keys.new_upload_id()
    ingest.upload("lobby", "cam1", None, b"jpeg", "image/jpeg", CAM, approach)
    assert sent[-1].approach == approach


@pytest.mark.parametrize("bad", ["short", "../../etc", "G" * 32, "A" * 32])
def test_malformed_approach_is_refused(bad: str) -> None:
    ingest, _, sent = app()
    with pytest.raises(BadMessageError):
        ingest.presign("lobby", "cam1", None, CAM, approach=bad)
    with pytest.raises(BadMessageError):
        ingest.upload("lobby", "cam1", None, b"jpeg", "image/jpeg", CAM, bad)
    assert sent == []
