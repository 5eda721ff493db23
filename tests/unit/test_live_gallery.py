"""The live gallery: changed in place, searched like the immutable one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from facegate.core.live_gallery import LiveGallery
from facegate.core.matching import Gallery, identify, l2_normalize

pytestmark = pytest.mark.unit

DIM = 16


def people(seed: int, n: int, k: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"p{i}": l2_normalize(rng.normal(size=(k, DIM))).astype(np.float32) for i in range(n)}


def assert_same_answers(live: LiveGallery, mapping: dict[str, np.ndarray], seed: int) -> None:
    """Every probe gets the answer the immutable gallery of ``mapping`` gives."""
    ref = Gallery.from_mapping(mapping) if mapping else Gallery.empty(DIM)
    rng = np.random.default_rng(seed)
    probes = [l2_normalize(rng.normal(size=DIM)) for _ in range(20)]
    probes += [rows[0] + 0.01 * rng.normal(size=DIM) for rows in list(mapping.values())[:20]]
    for probe in probes:
        got = live.identify(probe, 0.9, margin=0.05)
        want = identify(probe, ref, 0.9, margin=0.05)
        got_key = (got.person, got.reason, got.second_person)
        assert got_key == (want.person, want.reason, want.second_person)
        assert got.distance == pytest.approx(want.distance, abs=1e-9)
    assert len(live) == len(mapping)
    assert live.template_count == sum(r.shape[0] for r in mapping.values())


def test_from_mapping_answers_as_the_immutable_gallery() -> None:
    mapping = people(1, 50)
    live = LiveGallery.from_mapping(mapping)
    assert_same_answers(live, mapping, 2)
    assert live.templates_of("p3").tobytes() == mapping["p3"].tobytes()
    assert live.capacity >= live.template_count + 1024


def test_add_replace_revoke_match_the_rebuilt_gallery() -> None:
    mapping = people(3, 30)
    live = LiveGallery.from_mapping(mapping)
    extra = people(4, 40, k=3)
    # a new person; a person whose templates grow (enrolment adds to them)
    live.put("new", extra["p0"])
    mapping["new"] = extra["p0"]
    grown = np.concatenate([mapping["p5"], extra["p1"]])
    live.put("p5", grown)
    mapping["p5"] = grown
    assert_same_answers(live, mapping, 5)
    assert live.templates_of("p5").tobytes() == grown.tobytes()
    # revocations: the revoked are never answered, their rows are reused
    for name in ("p0", "p7", "new"):
        assert live.remove(name) is True
        del mapping[name]
    assert live.remove("p0") is False
    assert_same_answers(live, mapping, 6)
    high = live._view.high
    live.put("later", extra["p2"])  # fills freed rows: the matrix does not grow
    mapping["later"] = extra["p2"]
    assert live._view.high == high
    assert_same_answers(live, mapping, 7)
    assert live.changes == 6


def test_revoked_person_is_never_the_answer_even_for_their_own_template() -> None:
    mapping = people(8, 10)
    live = LiveGallery.from_mapping(mapping)
    own = mapping["p4"][0]
    assert live.identify(own, 0.6).person == "p4"
    live.remove("p4")
    found = live.identify(own, 0.6)
    assert found.person != "p4" and found.second_person != "p4"
    assert "p4" not in live and live.count_of("p4") == 0
    with pytest.raises(KeyError):
        live.templates_of("p4")


def test_grows_past_its_capacity_and_empties() -> None:
    live = LiveGallery(DIM, capacity=4)
    mapping = people(9, 12, k=3)
    for name, rows in mapping.items():
        live.put(name, rows)
    assert live.capacity >= 36
    assert_same_answers(live, mapping, 10)
    for name in list(mapping):
        live.remove(name)
    assert len(live) == 0 and live.template_count == 0
    empty = live.identify(np.ones(DIM), 0.6)
    assert (empty.person, empty.reason) == (None, "empty_gallery")


def test_threshold_inputs_move_with_changes() -> None:
    live = LiveGallery.from_mapping(people(11, 5, k=2))
    assert live.templates_total() == 10
    assert live.templates_total(["p1", "nobody"]) == 2
    live.put("p1", people(12, 1, k=5)["p0"])
    assert live.templates_total() == 13 and live.count_of("p1") == 5
    live.remove("p2")
    assert live.templates_total() == 11


def test_bad_input_refused_without_change() -> None:
    live = LiveGallery.from_mapping(people(13, 3))
    with pytest.raises(ValueError):
        live.put("x", np.ones((2, DIM + 1)))
    with pytest.raises(ValueError):
        live.put("", np.ones((1, DIM)))
    with pytest.raises(ValueError):
        live.put("x", np.full((1, DIM), np.nan))
    assert len(live) == 3 and live.changes == 0


def test_searches_during_changes_never_answer_a_revoked_person() -> None:
    """A search started after remove() returned never names that person,
    while other threads keep changing the gallery."""
    mapping = people(14, 200)
    live = LiveGallery.from_mapping(mapping)
    stop = threading.Event()
    rng = np.random.default_rng(15)
    churn = people(16, 50)

    def writer() -> None:
        while not stop.is_set():
            for name, rows in churn.items():
                live.put("churn-" + name, rows)
            for name in churn:
                live.remove("churn-" + name)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(100):
            name = f"p{i}"
            own = mapping[name][0] + 0.001 * rng.normal(size=DIM)
            assert live.identify(own, 0.5).person == name
            live.remove(name)
            after = live.identify(own, 0.5)
            assert name not in (after.person, after.second_person)
    finally:
        stop.set()
        for t in threads:
            t.join()
