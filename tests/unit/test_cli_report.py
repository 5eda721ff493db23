"""``facegate doors list`` and the enrolment advice, on the in-memory store."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.adapters.memory_store import MemoryStore
from facegate.core.calibration import identify_threshold
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.tools.cli_report import doors_list_lines, enrol_advice

pytestmark = pytest.mark.unit


def store_with(people: int, templates: int) -> MemoryStore:
    store = MemoryStore()
    rng = np.random.default_rng(0)
    for i in range(people):
        v = rng.normal(size=(templates, 128))
        store.add_templates(f"p{i}", (v / np.linalg.norm(v, axis=1, keepdims=True)), "m")
    return store


def test_doors_list_says_what_each_door_promises() -> None:
    store = store_with(20, 2)
    store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), frames=2))
    store.set_door(DoorPolicy("gym", DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    store.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset({"p1"})))
    text = "\n".join(doors_list_lines(store, {}))
    t = identify_threshold([2] * 20, frames=2)
    calibrated = (
        f"threshold {t:.4f} (calibrated for 0.1% strangers per approach, 20 people, "
        "40 templates, 2 frame(s))"
    )
    assert calibrated in text
    assert "threshold 0.6000 (fixed)" in text
    assert "impostors holding a badge let in" in text
    # the random residents never match their own photos: every identify door warns
    assert text.count("WARNING") >= 2 and "facegate doors add lobby --mode verify" in text
    empty = doors_list_lines(MemoryStore(), {})
    assert empty == ["no doors configured (facegate doors add DOOR ...)"]


def test_enrol_advice_names_each_door_that_lets_the_person_in() -> None:
    store = store_with(5, 1)
    store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"})))
    store.set_door(DoorPolicy("vault", DoorMode.IDENTIFY, frozenset({"p4"})))
    lines = enrol_advice(store, "p1", {})
    assert len(lines) == 1 and "at lobby: a resident with 1 photo(s)" in lines[0]
    assert "with one more photo" in lines[0]
    assert enrol_advice(store, "nobody", {}) == []


def test_log_marks_the_frames_that_were_not_door_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    from types import SimpleNamespace

    from facegate.core import keys
    from facegate.core.messages import Decision, DoorEvent, Reason
    from facegate.core.signing import DoorSigner
    from facegate.tools import cli_pipeline

    store = MemoryStore()
    sign = DoorSigner.derive("log-test-secret-0123456789", "lobby").sign
    approach = keys.new_upload_id()

    def event(decision: Decision, with_approach: bool) -> DoorEvent:
        granted = decision is Decision.OPEN
        return DoorEvent(
            id=keys.new_upload_id(), upload_id=keys.new_upload_id(), door="lobby",
            camera="cam", decision=decision,
            reason=Reason.GRANTED if granted else Reason.UNKNOWN_PERSON,
            person="alice" if granted else None, issued_at=1000.0, expires_at=1030.0,
            approach=approach if with_approach else None,
        )

    assert store.record_decision(event(Decision.DENY, False), sign) is not None
    for decision in (Decision.DENY, Decision.OPEN):
        store.record_frame(event(decision, True), sign, window_end=1001.0, now=1000.0,
                           max_frames=3)
    monkeypatch.setattr(cli_pipeline, "_ctx", lambda: SimpleNamespace(store=store))
    assert cli_pipeline.cmd_log(argparse.Namespace(door=None, count=10, json=False)) == 0
    lines = capsys.readouterr().out.splitlines()[::-1]  # oldest first
    assert len(lines) == 3
    assert ["audit only" in line for line in lines] == [False, True, False]
    assert [f"approach={approach}" in line for line in lines] == [False, True, True]
