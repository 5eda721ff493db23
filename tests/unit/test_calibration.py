"""Identify thresholds for a gallery: the formulas on a table whose answers
are known, the committed table, and the door threshold following enrolments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facegate.core.calibration import (
    MIN_GALLERY_PROBES,
    DistanceModel,
    comparisons,
    default_model,
    identify_threshold,
    per_comparison_rate,
    resident_acceptance_from_templates,
    stranger_acceptance,
)
from facegate.core.matching import Gallery
from facegate.core.policy import DoorMode, DoorPolicy, door_threshold

pytestmark = pytest.mark.unit

# pair rate 1e-6 at 0.3, 1e-4 at 0.4, 1e-2 at 0.5 (two decades per 0.1)
TOY = DistanceModel.from_table(
    {
        "encoder": "toy",
        "impostor": {
            "log10_rate": [-6, -4, -2],
            "distance": [0.3, 0.4, 0.5],
            "measured_from": -4,
        },
        "genuine": {
            "levels": [0.0, 0.5, 1.0],
            "by_templates": {"1": [0.1, 0.4, 0.7], "2": [0.05, 0.3, 0.6]},
        },
    }
)


def test_pair_rate_and_its_inverse() -> None:
    assert TOY.pair_rate(0.4) == pytest.approx(1e-4)
    assert TOY.pair_rate(0.45) == pytest.approx(1e-3)
    assert TOY.pair_rate(0.2) == pytest.approx(1e-8)  # extrapolated below the table
    assert TOY.pair_threshold(1e-5) == pytest.approx(0.35)
    assert TOY.pair_threshold(1e-8) == pytest.approx(0.2)
    assert TOY.extrapolated(0.35) and not TOY.extrapolated(0.45)


def test_comparisons_and_per_comparison_rate() -> None:
    assert comparisons([1, 2, 3], frames=2) == 12
    assert comparisons(2, people=5, frames=3) == 30
    assert per_comparison_rate(1e-3, 1) == pytest.approx(1e-3)
    assert per_comparison_rate(0.19, 2) == pytest.approx(0.1)  # 1 - 0.81 ** 0.5
    with pytest.raises(ValueError):
        comparisons(2)


def test_threshold_for_a_gallery_by_hand() -> None:
    target = -math.expm1(100 * math.log1p(-1e-4))  # 100 comparisons at 1e-4 each
    assert identify_threshold(1, people=100, target=target, model=TOY) == pytest.approx(0.4)
    # same comparisons, however they are made up: 50 people x 2 templates, 25 x 2 x 2 frames
    assert identify_threshold([2] * 50, target=target, model=TOY) == pytest.approx(0.4)
    assert identify_threshold([2] * 25, frames=2, target=target, model=TOY) == pytest.approx(0.4)
    assert stranger_acceptance(0.4, 1, people=100, model=TOY) == pytest.approx(target)
    # ten times the comparisons: one decade lower per pair -> 0.05 lower
    wider = identify_threshold(1, people=1000, target=target, model=TOY)
    assert wider == pytest.approx(0.35, abs=2e-4)


def test_resident_rate_from_the_table() -> None:
    assert TOY.resident_rate(0.4, 1) == pytest.approx(0.5)
    assert TOY.resident_rate(0.3, 2) == pytest.approx(0.5)
    assert TOY.resident_rate(0.3, 9) == pytest.approx(0.5)  # largest count stands in
    assert TOY.resident_rate(0.01, 1) == 0.0 and TOY.resident_rate(0.9, 1) == 1.0


def test_resident_acceptance_leave_one_out() -> None:
    # each person: templates at 0, 0.1, 0.5 on a line -> nearest others 0.1, 0.1, 0.4
    people = {f"p{i}": np.array([[0.0, i], [0.1, i], [0.5, i]]) for i in range(7)}
    rate, probes = resident_acceptance_from_templates(people, 0.3) or (None, None)
    assert (rate, probes) == (pytest.approx(2 / 3), 21)
    few = {f"p{i}": people[f"p{i}"] for i in range(MIN_GALLERY_PROBES // 3 - 1)}
    assert resident_acceptance_from_templates(few, 0.3) is None
    assert resident_acceptance_from_templates({"solo": np.zeros((1, 2))}, 0.3) is None


def test_committed_table_is_sound() -> None:
    model = default_model()
    assert np.all(np.diff(model.distance) > 0) and np.all(np.diff(model.log10_rate) > 0)
    assert model.measured_from <= -5.5  # LFW View 1 resolves rates to about 1e-6
    # the engine's 1:1 point: 1e-3 of impostor pairs lie between 0.45 and 0.6
    assert 0.45 < model.pair_threshold(1e-3) < 0.6
    assert set(model.genuine) >= {1, 2, 3}
    at = model.pair_threshold(1e-4)
    assert model.resident_rate(at, 3) >= model.resident_rate(at, 1)  # more templates help


def unit_rows(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 128))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_door_threshold_follows_enrol_and_revoke() -> None:
    people = {f"p{i}": unit_rows(2, i) for i in range(10)}
    gallery = Gallery.from_mapping(people)
    door = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}))
    ten = door_threshold(door, gallery)
    assert ten == pytest.approx(identify_threshold([2] * 10))
    bigger = gallery.add("newcomer", unit_rows(3, 99))
    eleven = door_threshold(door, bigger)
    assert eleven < ten
    assert eleven == pytest.approx(identify_threshold([2] * 10 + [3]))
    assert door_threshold(door, bigger.remove("newcomer")) == ten  # revoke: back exactly
    # a door counts only the people it lets in
    two_allowed = DoorPolicy("side", DoorMode.IDENTIFY, frozenset({"p0", "p1", "ghost"}))
    assert door_threshold(two_allowed, bigger) == pytest.approx(identify_threshold([2, 2]))
    # frames per approach and the target move it the expected way
    burst = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), frames=3)
    strict = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), stranger_rate=1e-4)
    assert door_threshold(burst, gallery) == pytest.approx(identify_threshold([2] * 10, frames=3))
    assert door_threshold(burst, gallery) < ten and door_threshold(strict, gallery) < ten


def test_fixed_threshold_stays_fixed() -> None:
    gallery = Gallery.from_mapping({f"p{i}": unit_rows(1, i) for i in range(50)})
    fixed = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6)
    assert not fixed.calibrated
    assert door_threshold(fixed, gallery) == 0.6
    assert door_threshold(fixed, gallery.add("x", unit_rows(1, 77))) == 0.6
    verify = DoorPolicy("front", DoorMode.VERIFY, frozenset({"*"}))
    assert door_threshold(verify, gallery, default_threshold=0.55) == 0.55


def test_table_rows_by_hand() -> None:
    from facegate.core.calibration_table import build_table, impostor_rows
    from facegate.core.openset import PairSummary

    # 1000 impostor pairs at distances 0.000, 0.001, ...: the rate under d is d
    summary = PairSummary(np.array([0.1]), 1000, np.arange(501) / 1000.0, 0.5)
    rows = impostor_rows(summary)
    assert rows["measured_from"] == -2.0  # ten pairs: rate 1e-2
    table = dict(zip(rows["log10_rate"], rows["distance"], strict=True))
    assert table[-1.0] == pytest.approx(0.1) and table[-2.0] == pytest.approx(0.01)
    assert all(np.diff(rows["distance"]) > 0)  # extrapolated below, still increasing
    # a whole table from labelled points: a model that reads back
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(60), 3)
    enc = rng.normal(size=(60, 8))[labels] + 0.1 * rng.normal(size=(180, 8))
    model = DistanceModel.from_table(build_table(enc, labels, encoder="toy"))
    assert set(model.genuine) == {1, 2} and model.encoder == "toy"
    assert model.resident_rate(model.pair_threshold(1e-3), 2) > 0.9  # well separated
