"""Client-side pieces with no services: enrolment replies, the lock's
checks and event lines, the camera client's error handling."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from facegate.adapters.replies import encode_reply, parse_reply
from facegate.clients.camera import CameraClient, CameraError
from facegate.clients.lock import DoorListener
from facegate.core.errors import BadMessageError
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner
from facegate.engine.types import Box, Face
from facegate.tools.cli_lock import format_event

pytestmark = pytest.mark.unit

SIGNER = DoorSigner.derive("unit-test-secret-0123456789abcdef", "front")
KEY = SIGNER.public_key.hex


def face(seed: int) -> Face:
    enc = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return Face(Box(1, 2, 50, 60, 0.9), np.zeros((5, 2), np.float32), 60.0, enc)


def test_reply_round_trip_keeps_encodings_exactly() -> None:
    faces = [face(1), face(2)]
    raw = encode_reply(upload_id="a" * 32, person="p", key="k", faces=faces,
                       model_id="m", dim=128, error=None)
    reply = parse_reply(raw)
    assert reply.faces == 2 and reply.model_id == "m" and reply.error is None
    assert np.array_equal(reply.encodings[1], faces[1].encoding)
    assert reply.qualities[0] == pytest.approx(0.9 * 60 / 80, abs=1e-4)


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(v=2),
    lambda d: d.update(dim=0),
    lambda d: d["faces"][0].update(encoding="AAAA"),
    lambda d: d.pop("model_id"),
])
def test_malformed_replies_are_refused(mutate: Any) -> None:
    doc = json.loads(encode_reply(upload_id="a" * 32, person="p", key="k", faces=[face(1)],
                                  model_id="m", dim=128, error=None))
    mutate(doc)
    with pytest.raises(BadMessageError):
        parse_reply(json.dumps(doc).encode())


def event(now: float, **over: Any) -> DoorEvent:
    fields: dict[str, Any] = dict(
        id="e" * 32, upload_id="b" * 32, door="front", camera="cam1",
        decision=Decision.OPEN, reason=Reason.GRANTED, person="alice", distance=0.31,
        issued_at=now, expires_at=now + 30, stamps={"uploaded": now - 0.25},
        stream_id=f"{int(now * 1000)}-0",
    )
    fields.update(over)
    return DoorEvent(**fields)


def test_lock_accepts_once_and_rejects_replay_tamper_and_expiry() -> None:
    now = 1_000_000.0
    listener = DoorListener(None, "front", KEY, clock=lambda: now)  # type: ignore[arg-type]
    wire = SIGNER.sign(event(now))
    first = listener.check(wire)
    assert first.event is not None and first.event.person == "alice" and first.rejected is None
    assert (first.source, first.stream_id) == ("live", f"{int(now * 1000)}-0")
    assert listener.state.last_id == first.stream_id  # the accepted event's id: resume point
    assert listener.check(wire).rejected == "replayed"
    doc = json.loads(wire)
    doc["event"]["decision"] = "DENY"
    assert listener.check(json.dumps(doc).encode()).rejected == "tampered"
    old = SIGNER.sign(event(now - 100, id="f" * 32))
    assert listener.check(old).rejected == "expired"
    back = DoorSigner.derive("unit-test-secret-0123456789abcdef", "back")
    other_door = back.sign(event(now, id="0" * 32, door="back"))
    assert listener.check(other_door).rejected == "forged"
    from_stream = listener.check(SIGNER.sign(event(now, id="1" * 32)), "5-0")
    assert (from_stream.rejected, from_stream.source) == ("tampered", "stream")


def test_event_line_shows_decision_reason_person_and_latency() -> None:
    now = 1_000_000.0
    listener = DoorListener(None, "front", KEY, clock=lambda: now)  # type: ignore[arg-type]
    item = listener.check(SIGNER.sign(event(now)))
    line = format_event(item)
    assert line.startswith("OPEN") and "granted" in line and "person=alice" in line
    assert "250 ms" in line and "d=0.310" in line
    bad = listener.check(b"{}")
    assert format_event(bad).startswith("REJECTED  malformed")


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if self.headers.get("Authorization") != "Bearer good":
            body = b'{"error": "unauthorized", "message": "bad camera token"}'
            self.send_response(401)
        else:
            body = json.dumps({"upload_id": "a" * 32, "key": "uploads/front/c/x.jpg",
                               "url": "http://example.invalid/x", "expires_in": 60}).encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_ingest() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_camera_client_presigns_and_reports_server_errors(fake_ingest: str) -> None:
    ticket = CameraClient(fake_ingest, "good").presign("front", "c", badge="alice")
    assert ticket.upload_id == "a" * 32 and ticket.expires_in == 60
    with pytest.raises(CameraError) as info:
        CameraClient(fake_ingest, "wrong").presign("front", "c")
    assert info.value.status == 401 and info.value.code == "unauthorized"
    with pytest.raises(CameraError) as info:
        CameraClient("http://127.0.0.1:9", "good", timeout_s=1).presign("front", "c")
    assert info.value.code == "unreachable"
