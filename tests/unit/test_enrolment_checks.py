"""Enrolment that helps: a likely mix-up is refused with a clear reason (the
pure check and through Admin.enroll on the in-memory stores), and the door
report says what a door promises and what one more photo buys."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_objects import MemoryObjectStore
from facegate.adapters.memory_store import MemoryStore
from facegate.adapters.replies import encode_reply
from facegate.clients.admin import Admin
from facegate.core.calibration import identify_threshold, stranger_acceptance
from facegate.core.door_report import door_report, one_more_photo
from facegate.core.enrolment import likely_mixups
from facegate.core.errors import EnrolmentError
from facegate.core.messages import EncodeRequest
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.engine.types import Box, Face
from facegate.runtime.settings import CommonSettings

pytestmark = pytest.mark.unit

MODEL = "synthetic-2"


def test_mixups_by_hand() -> None:
    enrolled = {"bob": np.array([[1.0, 0.0]]), "alice": np.array([[0.0, 0.0]])}
    # alice's new photos: one at 0.1 from her old one, one at 0.9 (0.1 from bob)
    found = likely_mixups("alice", np.array([[0.1, 0.0], [0.9, 0.0]]), enrolled)
    assert [(m.index, m.other) for m in found] == [(1, "bob")]
    assert found[0].other_distance == pytest.approx(0.1)
    assert found[0].own_distance == pytest.approx(0.8)  # nearest own: the other new photo
    text = found[0].describe("a2.jpg", "alice")
    assert "a2.jpg" in text and "bob" in text and "0.100" in text and "0.800" in text
    # a first and only photo has nothing of its own to compare with
    assert likely_mixups("carol", np.array([[0.95, 0.0]]), enrolled) == []
    # two new photos of someone new, both near each other: fine
    assert likely_mixups("dan", np.array([[5.0, 5.0], [5.1, 5.0]]), enrolled) == []


class Encoder:
    """Answers enrolment requests as the encoder would, with given encodings."""

    def __init__(self, store: MemoryStore, encodings: Sequence[np.ndarray]) -> None:
        self.store = store
        self.encodings = list(encodings)

    def __call__(self, request: EncodeRequest) -> None:
        enc = self.encodings.pop(0).astype(np.float32)
        face = Face(Box(0, 0, 100, 100, 0.99), np.zeros((5, 2), np.float32), 100.0, enc)
        reply = encode_reply(
            upload_id=request.upload_id,
            person=request.person,
            key=request.key,
            faces=[face],
            model_id=MODEL,
            dim=2,
            error=None,
        )
        self.store.push_reply(request.upload_id, reply)


def admin(store: MemoryStore, objects: MemoryObjectStore, encodings: list[np.ndarray]) -> Admin:
    settings = CommonSettings.from_env(with_secrets())
    return Admin(settings, store, objects, Encoder(store, encodings))


def test_admin_refuses_a_mixup_and_keeps_nothing() -> None:
    store, objects = MemoryStore(), MemoryObjectStore()
    store.add_templates("bob", np.array([[1.0, 0.0]], np.float32), MODEL)
    photos = [("a1.jpg", b"x"), ("a2.jpg", b"y")]
    bad = admin(store, objects, [np.array([0.0, 0.0]), np.array([0.95, 0.0])])
    with pytest.raises(EnrolmentError, match=r"a2.jpg is closer to bob"):
        bad.enroll("alice", photos, timeout_s=1.0)
    assert "alice" not in store.people()
    stored = objects.keys()
    assert [k for k in stored if k.startswith("enroll/alice/")] == []  # removed again
    good = admin(store, objects, [np.array([0.0, 0.0]), np.array([0.1, 0.0])])
    result = good.enroll("alice", photos, timeout_s=1.0)
    assert result.total_templates == 2 and sorted(store.people()) == ["alice", "bob"]
    third = admin(store, objects, [np.array([0.05, 0.05])])
    assert third.enroll("alice", [("a3.jpg", b"z")], timeout_s=1.0).total_templates == 3


def rows(n: int, seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_door_report_identify_and_verify() -> None:
    people = {f"p{i}": rows(2, i) for i in range(20)}
    lobby = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}))
    report = door_report(lobby, people)
    assert report.calibrated and report.people == 20 and report.templates == 40
    assert report.threshold == pytest.approx(identify_threshold([2] * 20))
    assert report.stranger_rate == pytest.approx(1e-3)
    # random unit vectors are ~1.41 apart: no template is near its own -> residents 0%
    assert report.resident_rate == 0.0 and "40 enrolled photos" in report.resident_source
    assert report.warning is not None and "--mode verify" in report.warning
    fixed = door_report(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6), people)
    assert fixed.threshold == 0.6 and not fixed.calibrated
    assert fixed.stranger_rate == pytest.approx(stranger_acceptance(0.6, [2] * 20))
    assert fixed.stranger_rate > 0.2  # what a fixed 1:1 threshold implies for 20 people
    front = door_report(DoorPolicy("front", DoorMode.VERIFY, frozenset({"p1"})), people)
    assert front.threshold == 0.6 and front.people == 1
    assert front.stranger_rate == pytest.approx(stranger_acceptance(0.6, 2, people=1))
    assert "engine table" in front.resident_source  # 2 photos: too few to measure


def test_one_more_photo_helps() -> None:
    people = {f"p{i}": rows(1, i) for i in range(30)}
    lobby = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}))
    have, now, more = one_more_photo(lobby, people, "p3")
    assert have == 1 and 0.0 < now < more <= 1.0
