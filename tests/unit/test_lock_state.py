"""A lock's persistent replay guard and resume point (facegate.clients.lock_state),
on a temporary folder: what survives a restart, a corrupt file, a full disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from facegate.clients.lock import DoorListener
from facegate.clients.lock_state import LockState
from facegate.core.errors import ConfigError
from facegate.core.event_verify import EventRejected
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
SIGNER = DoorSigner.derive("lock-state-unit-secret-0123456789", "front")


def event(n: int, issued_at: float = NOW - 1.0, ttl: float = 30.0) -> DoorEvent:
    return DoorEvent(
        id=f"{n:032x}", upload_id=f"{n + 1000:032x}", door="front", decision=Decision.OPEN,
        reason=Reason.GRANTED, person="alice", issued_at=issued_at,
        expires_at=issued_at + ttl, stream_id=f"{int(issued_at * 1000)}-{n}",
    )


def listener(state: LockState, now: float = NOW) -> DoorListener:
    return DoorListener(None, "front", SIGNER.public_key, state=state,  # type: ignore[arg-type]
                        clock=lambda: now)


def test_a_restarted_lock_refuses_what_it_accepted(tmp_path: Path) -> None:
    wire = SIGNER.sign(event(1))
    with LockState.open(tmp_path, "front", now=NOW) as state:
        assert listener(state).check(wire).event is not None
    with LockState.open(tmp_path, "front", now=NOW + 1) as again:
        item = listener(again, NOW + 1).check(wire)
        assert item.rejected == "replayed"
        assert again.last_id == event(1).stream_id  # and it resumes after it
        assert listener(again, NOW + 1).check(SIGNER.sign(event(2))).event is not None


def test_the_file_is_written_before_the_event_is_handed_out(tmp_path: Path) -> None:
    state = LockState.open(tmp_path, "front", now=NOW)
    item = listener(state).check(SIGNER.sign(event(7)))
    assert item.event is not None
    doc = json.loads((tmp_path / "front.json").read_text())  # on disk already
    assert doc == {"v": 1, "door": "front", "last_id": event(7).stream_id,
                   "accepted": {f"{7:032x}": NOW + 29.0}, "not_before": None}
    assert not (tmp_path / "front.json.tmp").exists()
    assert os.stat(tmp_path / "front.json").st_mode & 0o077 == 0
    state.close()


def test_expired_ids_are_dropped_from_the_file(tmp_path: Path) -> None:
    with LockState.open(tmp_path, "front", now=NOW) as state:
        listener(state).check(SIGNER.sign(event(1, ttl=5.0)))
        listener(state, NOW + 10).check(SIGNER.sign(event(2, issued_at=NOW + 9)))
    doc = json.loads((tmp_path / "front.json").read_text())
    assert list(doc["accepted"]) == [f"{2:032x}"]
    assert len(LockState.open(tmp_path, "front", now=NOW + 100).guard) == 0


def test_a_full_guard_refuses_and_the_file_stays_bounded(tmp_path: Path) -> None:
    with LockState.open(tmp_path, "front", now=NOW, max_entries=3) as state:
        check = listener(state).check
        assert all(check(SIGNER.sign(event(n))).event for n in range(3))
        assert check(SIGNER.sign(event(3))).rejected == "replayed"
    assert len(json.loads((tmp_path / "front.json").read_text())["accepted"]) == 3


def test_a_corrupt_file_is_set_aside_and_older_events_are_refused(tmp_path: Path) -> None:
    (tmp_path / "front.json").write_text('{"v": 1, "door": "front", "accep')
    with LockState.open(tmp_path, "front", now=NOW, max_skew_s=5.0) as state:
        assert state.not_before == NOW + 5.0 and state.last_id is None
        check = listener(state).check
        # anything issued before the lock lost its memory may have been acted on
        assert check(SIGNER.sign(event(1, issued_at=NOW - 1))).rejected == "replayed"
        assert check(SIGNER.sign(event(2, issued_at=NOW + 4))).rejected == "replayed"
    aside = [p.name for p in tmp_path.glob("front.json.corrupt-*")]
    assert aside == [f"front.json.corrupt-{int(NOW)}"]
    with LockState.open(tmp_path, "front", now=NOW + 6) as later:  # the watermark persists
        assert later.not_before == NOW + 5.0
        assert listener(later, NOW + 6).check(SIGNER.sign(event(3, issued_at=NOW + 5.5))).event


@pytest.mark.parametrize("text", [
    "[]", '{"v": 2, "door": "front", "accepted": {}}', '{"v": 1, "door": "back", "accepted": {}}',
    '{"v": 1, "door": "front", "accepted": {"xyz": 1.0}}',
    '{"v": 1, "door": "front", "accepted": {}, "last_id": "*"}',
    '{"v": 1, "door": "front", "accepted": {}, "not_before": "soon"}',
])
def test_every_unreadable_state_means_recovery(tmp_path: Path, text: str) -> None:
    (tmp_path / "front.json").write_text(text)
    with LockState.open(tmp_path, "front", now=NOW) as state:
        assert state.not_before is not None


def test_an_unwritable_state_refuses_the_event(tmp_path: Path) -> None:
    state = LockState.open(tmp_path, "front", now=NOW)
    state.path = tmp_path / "missing-folder" / "front.json"
    item = listener(state).check(SIGNER.sign(event(1)))
    assert item.rejected == "not_recorded"
    assert len(state.guard) == 0 and state.last_id is None  # nothing half-remembered
    state.close()


def test_one_lock_process_per_door_and_folder(tmp_path: Path) -> None:
    first = LockState.open(tmp_path, "front", now=NOW)
    with pytest.raises(ConfigError, match="another lock process"):
        LockState.open(tmp_path, "front", now=NOW)
    LockState.open(tmp_path, "back", now=NOW).close()  # another door is fine
    first.close()
    LockState.open(tmp_path, "front", now=NOW).close()


def test_resume_point_moves_forward_only(tmp_path: Path) -> None:
    with LockState.open(tmp_path, "front", now=NOW) as state:
        state.advance("100-5")
        state.advance("99-9")
        state.advance("100-4")
        assert state.last_id == "100-5"
        state.flush()
    assert LockState.open(tmp_path, "front", now=NOW).last_id == "100-5"


def test_memory_only_state_guards_too() -> None:
    state = LockState("front")
    state.accept(event(1), NOW)
    with pytest.raises(EventRejected, match="replayed"):
        state.accept(event(1), NOW)
    assert state.last_id == event(1).stream_id
