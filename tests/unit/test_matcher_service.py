"""MatcherService on the in-memory store: every policy path, duplicates,
failures, and what the door receives (the signed event)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numpy as np
import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_store import MemoryStore
from facegate.core import keys
from facegate.core.errors import RedisUnavailableError
from facegate.core.event_verify import EventRejected, ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import DoorSigner
from services.matcher.service import MatcherService
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit

MODEL = "synthetic-128"
NOW = 1_700_000_000.0


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(v: np.ndarray, d: float, seed: int = 99) -> np.ndarray:
    step = np.random.default_rng(seed).normal(size=v.shape)
    step -= step.dot(v) * v
    return (v + d * step / np.linalg.norm(step)).astype(np.float32)


@dataclass
class World:
    store: MemoryStore
    service: MatcherService
    settings: MatcherSettings
    vec: dict[str, np.ndarray]
    clock: list[float]

    def submit(
        self,
        door: str,
        probe: np.ndarray | None,
        *,
        badge: str | None = None,
        error: Reason | None = None,
        age_s: float = 0.1,
        faces: int | None = None,
    ) -> MatchRequest:
        upload_id = keys.new_upload_id()
        count = 0
        if probe is not None:
            self.store.put_probe(upload_id, probe, MODEL, ttl_s=300, dim=128)
            count = int(np.asarray(probe).reshape(-1, 128).shape[0])
        return MatchRequest(
            upload_id=upload_id,
            door=door,
            camera="cam-1",
            badge=badge,
            faces=count if faces is None else faces,
            error=error,
            model_id=MODEL,
            stamps={"uploaded": self.clock[0] - age_s},
        )

    def decide(self, request: MatchRequest) -> DoorEvent:
        outcome = self.service.handle(request)
        assert outcome.recorded and outcome.event is not None
        wire = self.store.get_decision(request.upload_id)
        assert wire is not None
        assert request.door is not None
        version = self.store.door_key_version(request.door)
        signer = DoorSigner.derive(self.settings.signing_secret.get_secret_value(),
                                   request.door, version)
        return verify_event(wire, signer.public_key, request.door, now=self.clock[0],
                            guard=ReplayGuard())


@pytest.fixture
def world() -> World:
    settings = MatcherSettings.from_env(with_secrets(signing_secret="unit-test-secret-0123456789"))
    store = MemoryStore()
    clock = [NOW]
    service = MatcherService(settings, store, clock=lambda: clock[0])
    vec = {name: unit(i) for i, name in enumerate(("alice", "bob", "carol"))}
    for name, v in vec.items():
        store.add_templates(name, np.stack([v, near(v, 0.1, 5)]), MODEL)
    store.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice", "bob"}), 0.6))
    store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"alice", "bob"}), 0.6, 0.05))
    return World(store, service, settings, vec, clock)


def test_verify_grants_the_claimed_person_and_signs(world: World) -> None:
    ev = world.decide(world.submit("front", near(world.vec["alice"], 0.3)[None], badge="alice"))
    assert (ev.decision, ev.reason, ev.person) == (Decision.OPEN, Reason.GRANTED, "alice")
    assert ev.distance is not None and 0.2 < ev.distance < 0.4
    assert ev.expires_at == pytest.approx(NOW + world.settings.event_ttl_s)
    assert {"uploaded", "match_start", "matched", "published"} <= set(ev.stamps)
    assert world.store.get_probe(ev.upload_id) is None  # forgotten once decided
    assert world.store.published[-1][0] == keys.door_channel("front")


def test_identify_names_the_person(world: World) -> None:
    ev = world.decide(world.submit("lobby", near(world.vec["bob"], 0.25)[None]))
    assert (ev.decision, ev.person) == (Decision.OPEN, "bob")


@pytest.mark.parametrize(
    ("case", "reason", "person"),
    [
        ("unknown_door", Reason.UNKNOWN_DOOR, None),
        ("encoder_error", Reason.BAD_IMAGE, None),
        ("too_old", Reason.TIMEOUT, None),
        ("no_face", Reason.NO_FACE, None),
        ("several_faces", Reason.SEVERAL_FACES, None),
        ("verify_no_badge", Reason.UNKNOWN_PERSON, None),
        ("verify_unknown_badge", Reason.UNKNOWN_PERSON, "zed"),
        ("verify_not_allowed", Reason.NOT_ALLOWED_HERE, "carol"),
        ("verify_impostor", Reason.BELOW_THRESHOLD, "alice"),
        ("identify_stranger", Reason.UNKNOWN_PERSON, None),
        ("identify_not_allowed", Reason.NOT_ALLOWED_HERE, "carol"),
        ("identify_ambiguous", Reason.UNKNOWN_PERSON, None),
        ("probe_missing", Reason.INTERNAL_ERROR, None),
        ("probe_count_differs", Reason.INTERNAL_ERROR, None),
    ],
)
def test_every_deny_path(world: World, case: str, reason: Reason, person: str | None) -> None:
    alice, carol = world.vec["alice"], world.vec["carol"]
    stranger = unit(1234)
    if case == "identify_ambiguous":
        # two people nearly equally close: the margin refuses to pick
        mid = (world.vec["alice"] + world.vec["bob"]) / 2
        world.store.add_templates("dora", near(mid / np.linalg.norm(mid), 0.01, 7)[None], MODEL)
        world.store.add_templates("eve", near(mid / np.linalg.norm(mid), 0.012, 8)[None], MODEL)
        world.store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6, 0.05))
    request = {
        "unknown_door": lambda: world.submit("nowhere", alice[None], badge="alice"),
        "encoder_error": lambda: world.submit("front", None, badge="alice", error=Reason.BAD_IMAGE),
        "too_old": lambda: world.submit("front", alice[None], badge="alice", age_s=60),
        "no_face": lambda: world.submit("front", np.zeros((0, 128), np.float32), badge="alice"),
        "several_faces": lambda: world.submit("front", np.stack([alice, carol]), badge="alice"),
        "verify_no_badge": lambda: world.submit("front", alice[None]),
        "verify_unknown_badge": lambda: world.submit("front", alice[None], badge="zed"),
        "verify_not_allowed": lambda: world.submit("front", carol[None], badge="carol"),
        "verify_impostor": lambda: world.submit("front", stranger[None], badge="alice"),
        "identify_stranger": lambda: world.submit("lobby", stranger[None]),
        "identify_not_allowed": lambda: world.submit("lobby", near(carol, 0.2)[None]),
        "identify_ambiguous": lambda: world.submit(
            "lobby", (mid / np.linalg.norm(mid)).astype(np.float32)[None]
        ),
        "probe_missing": lambda: world.submit("front", None, badge="alice", faces=1),
        "probe_count_differs": lambda: world.submit("front", alice[None], badge="alice", faces=2),
    }[case]()
    ev = world.decide(request)
    assert (ev.decision, ev.reason) == (Decision.DENY, reason)
    assert ev.person == person


def test_a_redelivered_request_decides_nothing_more(world: World) -> None:
    request = world.submit("front", world.vec["alice"][None], badge="alice")
    first = world.service.handle(request)
    again = world.service.handle(request)
    assert first.recorded and not again.recorded and again.event is None
    assert len(world.store.read_log("front", count=10)) == 1
    assert len(world.store.published) == 1


def test_racing_deliveries_make_one_decision(world: World) -> None:
    request = world.submit("front", world.vec["alice"][None], badge="alice")
    outcomes = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        outcomes.append(world.service.handle(request).recorded)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] * 5 + [True]
    assert len(world.store.published) == 1


def test_gallery_follows_enrolment_and_revocation(world: World) -> None:
    dave = unit(77)
    first = world.decide(world.submit("lobby", dave[None]))
    assert first.reason is Reason.UNKNOWN_PERSON
    world.store.add_templates("dave", dave[None], MODEL)
    world.store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6, 0.05))
    assert world.decide(world.submit("lobby", dave[None])).person == "dave"
    world.store.remove_person("dave")
    assert world.decide(world.submit("lobby", dave[None])).reason is Reason.UNKNOWN_PERSON


def test_redis_down_propagates_for_the_task_to_retry(world: World) -> None:
    request = world.submit("front", world.vec["alice"][None], badge="alice")
    world.store.available = False
    with pytest.raises(RedisUnavailableError):
        world.service.handle(request)
    world.store.available = True
    assert world.decide(request).decision is Decision.OPEN  # the retry decides


def test_a_bug_while_deciding_becomes_internal_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("services.matcher.service.decide", broken)
    ev = world.decide(world.submit("front", world.vec["alice"][None], badge="alice"))
    assert (ev.decision, ev.reason) == (Decision.DENY, Reason.INTERNAL_ERROR)


def test_deny_records_without_deciding(world: World) -> None:
    request = world.submit("front", world.vec["alice"][None], badge="alice")
    outcome = world.service.deny(request)
    assert outcome.recorded and outcome.event is not None
    assert outcome.event.reason is Reason.INTERNAL_ERROR
    assert not world.service.handle(request).recorded  # the decision stands
    no_door = MatchRequest(upload_id=keys.new_upload_id(), kind=request.kind, door="x")
    assert world.service.deny(no_door).recorded  # door "x" is unknown but gets its DENY


def test_rotation_takes_effect_on_the_next_upload(world: World) -> None:
    """After ``rotate-key`` the matcher signs with the door's next key: a
    lock holding only the old public key refuses it (``unknown_key``)."""
    secret = world.settings.signing_secret.get_secret_value()
    old = DoorSigner.derive(secret, "front", 1).public_key
    alice = near(world.vec["alice"], 0.3)[None]
    first = world.service.handle(world.submit("front", alice, badge="alice"))
    wire = world.store.get_decision(first.event.upload_id if first.event else "")
    assert wire is not None and json.loads(wire)["kid"] == old.kid
    assert world.store.rotate_door_key("front") == 2
    second = world.submit("front", alice, badge="alice")
    world.service.handle(second)
    rotated = world.store.get_decision(second.upload_id)
    assert rotated is not None
    new = DoorSigner.derive(secret, "front", 2).public_key
    assert json.loads(rotated)["kid"] == new.kid != old.kid
    with pytest.raises(EventRejected) as info:
        verify_event(rotated, old, "front", now=world.clock[0])
    assert info.value.reason == "unknown_key"
    # a lock holding both keys (the rotation window) accepts old and new
    for signed in (wire, rotated):
        assert verify_event(signed, [old, new], "front", now=world.clock[0]).granted
