"""facegate.core.matching: the fast paths against the loop-based oracles, the
distance numerics, the margin rule and input validation."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from facegate.core import matching
from facegate.core.matching import (
    Gallery,
    distances,
    identify,
    identify_many,
    l2_normalize,
    reference_identify,
    reference_verify,
    verify,
)

pytestmark = pytest.mark.unit


def unit_rows(rng: np.random.Generator, n: int, d: int = 128) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, d))
    out: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def random_gallery(
    rng: np.random.Generator, people: int, *, max_templates: int = 4, d: int = 128
) -> Gallery:
    mapping = {}
    for i in range(people):
        k = int(rng.integers(1, max_templates + 1))
        mapping[f"person{i:04d}"] = unit_rows(rng, k, d)
    return Gallery.from_mapping(mapping)


def probes_near(
    rng: np.random.Generator, gallery: Gallery, n: int, noise: float
) -> npt.NDArray[np.float64]:
    """Half near some template (matches), half random (strangers)."""
    rows = rng.integers(0, gallery.template_count, n)
    near = gallery.templates[rows] + noise * rng.standard_normal((n, gallery.dim))
    far = rng.standard_normal((n, gallery.dim))
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    pick = rng.random(n) < 0.5
    out: npt.NDArray[np.float64] = np.where(pick[:, None], near, far)
    return out


def same_answer(fast: matching.IdentifyResult, ref: matching.IdentifyResult) -> None:
    assert fast.person == ref.person
    assert fast.second_person == ref.second_person
    assert fast.distance == pytest.approx(ref.distance, abs=1e-9)
    assert fast.second_distance == pytest.approx(ref.second_distance, abs=1e-9)
    assert fast.matched == ref.matched
    assert fast.reason == ref.reason


# --------------------------------------------------------------------------- distances


def test_distances_match_direct_differences() -> None:
    rng = np.random.default_rng(0)
    t = rng.standard_normal((37, 16))
    p = rng.standard_normal((5, 16))
    want = np.linalg.norm(p[:, None, :] - t[None, :, :], axis=2)
    got = distances(p, t)
    assert got.shape == (5, 37)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    single = distances(p[2], t)
    assert single.shape == (37,)
    np.testing.assert_allclose(single, want[2], rtol=1e-12, atol=1e-12)


def test_distances_float32_stays_float32_and_accurate() -> None:
    rng = np.random.default_rng(1)
    t = unit_rows(rng, 500)
    p = unit_rows(rng, 3)
    got = distances(p, t)
    assert got.dtype == np.float32
    want = np.linalg.norm(p[:, None, :].astype(np.float64) - t[None].astype(np.float64), axis=2)
    np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_identical_vectors_are_at_exactly_zero(dtype: type, scale: float) -> None:
    rng = np.random.default_rng(2)
    t: npt.NDArray[np.floating] = (rng.standard_normal((300, 128)) * scale).astype(dtype)
    d = distances(t, t)
    assert not np.isnan(d).any()
    assert (d >= 0).all()
    np.testing.assert_array_equal(np.diag(d), np.zeros(300, dtype=dtype))


def test_nearly_identical_vectors_are_not_rounded_to_zero_or_noise() -> None:
    rng = np.random.default_rng(3)
    a = unit_rows(rng, 1)[0].astype(np.float64)
    step = np.zeros(128)
    step[7] = 1e-6
    d = distances(a, np.stack([a + step, a - 2 * step]))
    np.testing.assert_allclose(d, [1e-6, 2e-6], rtol=1e-6)


def test_distances_are_chunked_consistently(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    t = unit_rows(rng, 5000)
    p = unit_rows(rng, 7)
    whole = distances(p, t)
    monkeypatch.setattr(matching, "_BLOCK_ELEMENTS", 7 * 10)  # forces 1024-row blocks
    np.testing.assert_array_equal(distances(p, t), whole)


def test_l2_normalize() -> None:
    x = np.array([[3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 1.0]])
    assert l2_normalize(np.array([1.0, 1.0], dtype=np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="zero vector"):
        l2_normalize(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("probe", "templates", "message"),
    [
        (np.zeros(128), np.zeros((3, 64)), "dimension 128 does not match 64"),
        (np.full(4, np.nan), np.zeros((3, 4)), "NaN"),
        (np.zeros(4), np.array([[0.0, np.inf, 0.0, 0.0]]), "NaN or infinite"),
        (np.zeros(4), np.zeros((0, 4)), "empty"),
        (np.zeros(0), np.zeros((1, 4)), "empty"),
        (np.zeros((2, 2, 4)), np.zeros((1, 4)), "shape"),
        (np.array(["a", "b"]), np.zeros((1, 2)), "real numbers"),
        (np.zeros(4, dtype=bool), np.zeros((1, 4)), "real numbers"),
    ],
)
def test_distances_reject_bad_input(
    probe: npt.NDArray[np.generic], templates: npt.NDArray[np.generic], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        distances(probe, templates)


# --------------------------------------------------------------------------- verify


def test_verify_takes_the_nearest_template() -> None:
    templates = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    probe = np.array([0.0, 0.9])
    r = verify(probe, templates, 0.5)
    assert r.template == 1
    assert r.distance == pytest.approx(0.1)
    assert r.matched and r.reason == "granted"
    r = verify(probe, templates, 0.1)  # strictly under the threshold
    assert not r.matched and r.reason == "below_threshold"
    assert verify(probe, templates[1], 0.5).distance == pytest.approx(0.1)


def test_verify_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        t = unit_rows(rng, int(rng.integers(1, 6)), 32)
        p = t[0] + rng.normal(0, rng.uniform(0.01, 0.3), 32)
        threshold = float(rng.uniform(0.1, 1.5))
        fast, ref = verify(p, t, threshold), reference_verify(p, t, threshold)
        assert (fast.matched, fast.reason, fast.template) == (ref.matched, ref.reason, ref.template)
        assert fast.distance == pytest.approx(ref.distance, abs=1e-9)


@pytest.mark.parametrize("threshold", [-0.1, math.nan, math.inf])
def test_verify_rejects_bad_threshold(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        verify(np.zeros(2), np.ones((1, 2)), threshold)


def test_verify_rejects_no_templates_and_mismatch() -> None:
    with pytest.raises(ValueError, match="empty"):
        verify(np.zeros(2), np.zeros((0, 2)), 0.6)
    with pytest.raises(ValueError, match="does not match"):
        verify(np.zeros(3), np.zeros((1, 2)), 0.6)


# --------------------------------------------------------------------------- gallery


def test_gallery_layout_and_edits() -> None:
    rng = np.random.default_rng(6)
    a, b, c = unit_rows(rng, 2, 8), unit_rows(rng, 1, 8), unit_rows(rng, 3, 8)
    g = Gallery.from_mapping({"ann": a, "bob": b[0], "cid": c})
    assert len(g) == 3 and g.people == ("ann", "bob", "cid")
    assert g.template_count == 6 and g.dim == 8
    assert g.templates.dtype == np.float32 and g.templates.flags.c_contiguous
    assert g.counts.tolist() == [2, 1, 3]
    assert g.nbytes >= g.templates.nbytes + g.sq_norms.nbytes + g.owner.nbytes
    rows = [g.rows_of(i) for i in range(3)]
    assert sorted(np.concatenate(rows).tolist()) == list(range(6))  # each row once
    for i, r in enumerate(rows):
        assert (g.owner[r] == i).all()
    np.testing.assert_array_equal(g.templates_of("ann"), a)
    np.testing.assert_array_equal(g.templates_of("bob"), b)
    np.testing.assert_array_equal(g.templates_of("cid"), c)
    np.testing.assert_allclose(g.sq_norms, np.ones(6), rtol=1e-6)
    with pytest.raises(ValueError, match="read-only"):
        g.templates[0, 0] = 5.0
    with pytest.raises(AttributeError, match="immutable"):
        g.people = ()
    assert "bob" in g and "dan" not in g

    more = unit_rows(rng, 2, 8)
    g2 = g.add("bob", more)
    assert len(g.templates_of("bob")) == 1  # the original is unchanged
    np.testing.assert_array_equal(g2.templates_of("bob"), np.concatenate([b, more]))
    np.testing.assert_array_equal(g2.templates_of("cid"), c)
    g3 = g2.add("dan", unit_rows(rng, 1, 8))
    assert g3.people == ("ann", "bob", "cid", "dan")

    g4 = g3.remove("bob")
    assert g4.people == ("ann", "cid", "dan")
    assert g4.counts.tolist() == [2, 3, 1] and g4.template_count == 6
    np.testing.assert_array_equal(g4.templates_of("cid"), c)
    np.testing.assert_array_equal(g4.templates_of("dan"), g3.templates_of("dan"))
    assert g4.remove("nobody").people == g4.people

    door = g3.restrict(["dan", "ann", "not-enrolled"])
    assert door.people == ("ann", "dan")
    np.testing.assert_array_equal(door.templates_of("ann"), a)
    assert len(g3.restrict([])) == 0
    with pytest.raises(KeyError):
        g.templates_of("dan")


def test_gallery_rejects_bad_templates() -> None:
    with pytest.raises(ValueError, match="does not match"):
        Gallery.from_mapping({"a": np.ones((1, 4)), "b": np.ones((1, 5))})
    with pytest.raises(ValueError, match="empty"):
        Gallery.from_mapping({"a": np.zeros((0, 4))})
    with pytest.raises(ValueError, match="NaN"):
        Gallery.from_mapping({"a": np.array([[np.nan, 1.0]])})
    g = Gallery.from_mapping({"a": np.ones((1, 4))})
    with pytest.raises(ValueError, match="does not match"):
        g.add("b", np.ones((1, 3)))
    with pytest.raises(ValueError, match="does not match"):
        identify(np.ones(3), g, 0.6)


# --------------------------------------------------------------------------- identify


@pytest.mark.parametrize("seed", range(25))
def test_identify_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    gallery = random_gallery(rng, int(rng.integers(1, 60)), d=int(rng.choice([8, 32, 128])))
    threshold = float(rng.uniform(0.3, 1.3))
    margin = float(rng.choice([0.0, 0.05, 0.2]))
    probes = probes_near(rng, gallery, 20, noise=float(rng.uniform(0.01, 0.1)))
    many = identify_many(probes, gallery, threshold, margin=margin)
    for probe, fast in zip(probes, many, strict=True):
        ref = reference_identify(probe, gallery, threshold, margin=margin)
        same_answer(fast, ref)
        same_answer(identify(probe, gallery, threshold, margin=margin), ref)


def test_identify_matches_reference_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets split into blocks, and a person larger than one block."""
    rng = np.random.default_rng(7)
    mapping = {f"p{i}": unit_rows(rng, 1 + i % 2, 16) for i in range(2600)}
    mapping["big"] = unit_rows(rng, 2500, 16)
    gallery = Gallery.from_mapping(mapping)
    monkeypatch.setattr(matching, "_BLOCK_ELEMENTS", 1)  # 1024-row blocks
    probes = probes_near(rng, gallery, 40, noise=0.05)
    for probe, fast in zip(probes, identify_many(probes, gallery, 0.8, margin=0.05), strict=True):
        same_answer(fast, reference_identify(probe, gallery, 0.8, margin=0.05))


def test_identify_uses_min_over_templates_and_margin_rule() -> None:
    # ann's second template is nearest; bob is 0.1 behind.
    gallery = Gallery.from_mapping(
        {
            "ann": np.array([[1.0, 0.0], [0.0, 0.30]]),
            "bob": np.array([[0.0, 0.40], [5.0, 5.0]]),
            "cid": np.array([[9.0, 9.0]]),
        }
    )
    probe = np.array([0.0, 0.0])
    r = identify(probe, gallery, 0.5)
    assert (r.person, r.second_person, r.reason, r.matched) == ("ann", "bob", "granted", True)
    assert r.distance == pytest.approx(0.3) and r.second_distance == pytest.approx(0.4)
    assert identify(probe, gallery, 0.5, margin=0.09).matched
    r = identify(probe, gallery, 0.5, margin=0.11)
    assert (r.matched, r.reason, r.person) == (False, "ambiguous", "ann")
    r = identify(probe, gallery, 0.3)  # not strictly under the threshold
    assert (r.matched, r.reason, r.person) == (False, "below_threshold", "ann")
    # threshold is checked before the margin
    assert identify(probe, gallery, 0.2, margin=1.0).reason == "below_threshold"


def test_identify_exact_tie_is_ambiguous_with_a_margin() -> None:
    rng = np.random.default_rng(8)
    shared = unit_rows(rng, 1)
    gallery = Gallery.from_mapping(
        {"x": unit_rows(rng, 2), "twin1": shared, "y": unit_rows(rng, 3), "twin2": shared}
    )
    probe = shared[0] + 0.01 * rng.standard_normal(128)
    r = identify(probe, gallery, 0.6, margin=0.01)
    assert {r.person, r.second_person} == {"twin1", "twin2"}
    assert r.distance == r.second_distance
    assert (r.matched, r.reason) == (False, "ambiguous")
    ref = reference_identify(probe, gallery, 0.6, margin=0.01)
    assert (ref.person, ref.reason) == ("twin1", "ambiguous")  # oracle: first in order wins
    assert identify(probe, gallery, 0.6).matched  # without a margin a tie still opens


def test_identify_single_person_and_empty_gallery() -> None:
    one = Gallery.from_mapping({"solo": np.array([[0.0, 1.0]])})
    r = identify(np.array([0.0, 0.9]), one, 0.5, margin=0.3)
    assert (r.person, r.matched, r.reason) == ("solo", True, "granted")
    assert r.second_person is None and r.second_distance == math.inf

    empty = Gallery.from_mapping({})
    assert len(empty) == 0
    r = identify(np.zeros(128), empty, 0.6)
    assert (r.person, r.matched, r.reason) == (None, False, "empty_gallery")
    assert r.distance == math.inf
    assert reference_identify(np.zeros(128), empty, 0.6) == r
    assert identify_many(np.zeros((3, 128)), empty, 0.6) == [r, r, r]
    assert len(one.restrict(["nobody"])) == 0


def test_identify_rejects_bad_margin_and_nan_probe() -> None:
    g = Gallery.from_mapping({"a": np.ones((1, 4))})
    with pytest.raises(ValueError, match="margin"):
        identify(np.ones(4), g, 0.6, margin=-0.1)
    with pytest.raises(ValueError, match="NaN"):
        identify(np.array([1.0, np.nan, 0.0, 0.0]), g, 0.6)
    with pytest.raises(ValueError, match="vector"):
        identify(np.ones((2, 4)), g, 0.6)


def test_large_gallery_sanity() -> None:
    """200k templates (50k people x 4): enrolled probes come back as
    themselves, strangers do not match, and the oracle agrees on a sample."""
    rng = np.random.default_rng(9)
    people = 50_000
    t = unit_rows(rng, people * 4)
    gallery = Gallery.from_mapping({f"p{i}": t[4 * i : 4 * i + 4] for i in range(people)})
    assert gallery.template_count == 200_000
    who = rng.integers(0, people, 32)
    rows = 4 * who + rng.integers(0, 4, 32)
    noisy = t[rows] + 0.02 * rng.standard_normal((32, 128)).astype(np.float32)
    results = identify_many(noisy, gallery, 0.6, margin=0.1)
    assert [r.person for r in results] == [f"p{i}" for i in who]
    assert all(r.matched and r.distance < 0.3 for r in results)
    strangers = identify_many(unit_rows(rng, 8), gallery, 0.6)
    assert not any(r.matched for r in strangers)
    for probe, fast in zip(noisy[:3], results[:3], strict=True):
        same_answer(fast, reference_identify(probe, gallery, 0.6, margin=0.1))
