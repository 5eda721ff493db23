"""The pipelined encoder with the real worker: bursts of uploads keep each
door's order, and an encoder stopped mid-batch loses nothing (what it took
is answered, what it held unstarted goes back to the queue for the other).

Uploads are claimed and put in the bucket and their encode tasks sent
directly, as the bucket event would (the ingest path has its own tests), so
that the pace of the burst is the test's own.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_site import Site

from facegate.adapters.celery_app import ENCODE_QUEUE, send_encode
from facegate.core import keys
from facegate.core.messages import EncodeRequest, UploadKind
from facegate.core.policy import DoorMode, DoorPolicy

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

WAIT_S = 120.0


@pytest.fixture(scope="module")
def doors(site: Site) -> list[str]:
    names = ["pipe-a", "pipe-b", "pipe-c"]
    for door in names:
        site.admin.set_door(DoorPolicy(door, DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    return names


@pytest.fixture(scope="module")
def snapshots(samples_dir: Path) -> list[bytes]:
    """Two faces nobody enrolled here needs (DENY unknown_person or OPEN: the
    decision itself is not the point) and a picture without a face."""
    from facegate.tools.demo import no_face_picture

    return [(samples_dir / "obama3.jpg").read_bytes(), (samples_dir / "biden.jpg").read_bytes(),
            no_face_picture()]


def send(site: Site, door: str, data: bytes) -> str:
    upload_id = keys.new_upload_id()
    key = keys.upload_object_key(door, "cam7", upload_id)
    # claimed, as a presign would: an unclaimed object's bucket event makes
    # ingest decide it DENY unclaimed at once, without any encoder
    site.store.put_claim(upload_id, key=key, door=door, camera="cam7", badge=None, ttl_s=300)
    site.objects.put(key, data, "image/jpeg")
    request = EncodeRequest(
        upload_id=upload_id, kind=UploadKind.ACCESS, bucket=site.settings.bucket, key=key,
        door=door, camera="cam7", stamps={"uploaded": time.time()},
    )
    send_encode(site.celery, request)  # type: ignore[arg-type]
    return upload_id


def wait_for_decisions(site: Site, upload_ids: list[str], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    missing = list(upload_ids)
    while missing and time.monotonic() < deadline:
        missing = [u for u in missing if site.store.get_decision(u) is None]
        if missing:
            time.sleep(0.2)
    assert not missing, (
        f"{len(missing)} of {len(upload_ids)} uploads without a decision ({what})\n"
        f"encoder-1:\n{site.log('encoder-1')}\nencoder-2:\n{site.log('encoder-2')}"
    )


def stream_order(site: Site, door: str, upload_ids: set[str]) -> list[str]:
    """The door stream's upload ids (in the order they were recorded), ours only."""
    out = []
    for _, wire in site.store.events_since(door, "0-0", count=100_000):
        upload_id = json.loads(wire)["event"]["upload_id"]
        if upload_id in upload_ids:
            out.append(upload_id)
    return out


def test_a_burst_keeps_each_doors_order(site: Site, doors: list[str],
                                        snapshots: list[bytes]) -> None:
    """Three doors interleaved, 36 uploads in about a second: several
    batches in flight at once; each door's decisions come out in its order."""
    sent: dict[str, list[str]] = {door: [] for door in doors}
    for i in range(36):
        door = doors[i % 3]
        sent[door].append(send(site, door, snapshots[i % len(snapshots)]))
        time.sleep(0.03)
    everything = [u for ids in sent.values() for u in ids]
    wait_for_decisions(site, everything, "burst")
    for door, ids in sent.items():
        assert stream_order(site, door, set(ids)) == ids, door


@pytest.fixture
def second_encoder(site: Site) -> Iterator[str]:
    """encoder-2 running beside encoder-1; encoder-1 consuming again afterwards."""
    site.stack.start("encoder-2")
    try:
        yield f"encoder-1@{socket.gethostname()}"
    finally:
        site.celery.control.add_consumer(  # type: ignore[attr-defined]
            ENCODE_QUEUE, destination=[f"encoder-1@{socket.gethostname()}"], reply=True,
            timeout=5.0)
        site.stack.stop("encoder-2")


def test_an_encoder_stopped_mid_batch_loses_nothing(
    site: Site, doors: list[str], snapshots: list[bytes], second_encoder: str
) -> None:
    """Both encoders stop consuming while a burst is queued; encoder-2
    consumes it and is stopped (SIGTERM, the warm shutdown of a deployment) once its first
    decision is out, with batches still in its pipeline and tasks still
    reserved. encoder-1 then consumes again: every upload gets exactly one
    decision (answered by encoder-2 before it exited, or redelivered)."""
    encoder_2 = f"encoder-2@{socket.gethostname()}"
    replies = site.celery.control.cancel_consumer(  # type: ignore[attr-defined]
        ENCODE_QUEUE, destination=[second_encoder, encoder_2], reply=True, timeout=5.0)
    assert len(replies) == 2, f"both encoders should answer cancel_consumer: {replies}"
    # The whole burst is queued before encoder-2 consumes, so that on a slow
    # machine (a put slower than an encoder batch) it cannot finish the
    # burst while the test is still sending it.
    ids = [send(site, doors[i % 3], snapshots[i % len(snapshots)]) for i in range(80)]
    replies = site.celery.control.add_consumer(  # type: ignore[attr-defined]
        ENCODE_QUEUE, destination=[encoder_2], reply=True, timeout=5.0)
    assert replies, "encoder-2 did not answer the add_consumer request"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not any(site.store.get_decision(u) for u in ids):
        time.sleep(0.05)
    decided_before = sum(site.store.get_decision(u) is not None for u in ids)
    assert decided_before < len(ids), "encoder-2 finished the burst before it was stopped"
    site.stack.stop("encoder-2")
    log = site.stack.tail("encoder-2", 200)
    site.celery.control.add_consumer(  # type: ignore[attr-defined]
        ENCODE_QUEUE, destination=[second_encoder], reply=True, timeout=5.0)
    wait_for_decisions(site, ids, "after encoder-2 stopped")
    for door in doors:
        mine = [u for i, u in enumerate(ids) if doors[i % 3] == door]
        recorded = stream_order(site, door, set(mine))
        assert sorted(recorded) == sorted(mine), f"{door}: lost or duplicated decisions"
    assert "Traceback" not in log, log
