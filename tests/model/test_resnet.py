"""dlib's ResNet converted to TensorFlow: the parse, the weights cache, and
equivalence with dlib itself (``dlib-bin``) on real face chips."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from facegate.core.errors import ModelError, ModelFormatError
from facegate.engine import resnet
from facegate.engine.model_store import ResNetEmbedder, plan_chunks
from facegate.engine.types import ChipEmbedder, Image

pytestmark = pytest.mark.model

Loader = Callable[[str], Image]
U8 = npt.NDArray[np.uint8]

REAL_BOUND = 1e-5
"""dlib vs ours on real chips: float32 round-off only (measured about 3e-7)."""

SYNTHETIC_BOUND = 2e-5
"""dlib vs ours on flat/noise chips (measured: 2e-6 black, 4.1e-6 white,
3e-7 noise). A flat chip sits far from the training data: every position sees
the same value, activations grow large and uniform and the fc sums 256 equal
large terms, so the two implementations' different float32 summation orders
(dlib's im2col GEMM vs oneDNN's direct convolution) show up more. 2e-5 is
about 5x the worst measured value and 4 orders of magnitude under the 0.6
match threshold; any wiring or padding error moves descriptors by > 1e-2."""

SAMPLE_NAMES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
)


@pytest.fixture(scope="module")
def dlib_module() -> Any:
    return pytest.importorskip("dlib", reason="dlib-bin (dev dependency) is the oracle")


@pytest.fixture(scope="module")
def dlib_encoder(dlib_module: Any) -> Any:
    return dlib_module.face_recognition_model_v1(str(resnet.locate_model_file()))


@pytest.fixture(scope="module")
def real_chips(dlib_module: Any, load_sample: Loader) -> U8:
    """Chips cut by dlib itself: HOG detector (upsample 1), 5-point landmarks,
    ``get_face_chip`` (150 px, padding 0.25)."""
    import face_recognition_models

    detector = dlib_module.get_frontal_face_detector()
    predictor = dlib_module.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    chips = []
    for name in SAMPLE_NAMES:
        image = load_sample(name)
        for rect in detector(image, 1):
            shape = predictor(image, rect)
            chips.append(dlib_module.get_face_chip(image, shape, size=150, padding=0.25))
    assert len(chips) >= 5, "dlib should find a face in most sample photos"
    return np.stack(chips).astype(np.uint8)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> ResNetEmbedder:
    return ResNetEmbedder.load(tmp_path_factory.mktemp("cache"))


def synthetic_chips() -> U8:
    noise = np.random.default_rng(7).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    return np.stack(
        [np.zeros((150, 150, 3), np.uint8), np.full((150, 150, 3), 255, np.uint8), noise]
    )


def dlib_descriptors(dlib_encoder: Any, chips: U8) -> npt.NDArray[np.float64]:
    return np.array([np.array(dlib_encoder.compute_face_descriptor(c)) for c in chips])


# ------------------------------------------------------------------ the parse


def test_parse_facts() -> None:
    net = resnet.read_dlib_resnet(resnet.locate_model_file())
    assert len(net.layers) == 108  # every layer with a record (tags and skips have none)
    assert net.count("con") == 29 and net.count("affine") == 29
    assert net.count("add_prev") == 14 and net.count("relu") == 29
    assert net.param_count == 5_614_592  # about 5.6 M
    fc = net.layers[-1]
    assert fc.spec.kind == "fc"
    assert fc.params["weight"].shape == (256, 128)
    stem = net.layers[0]
    assert stem.params["weight"].shape == (32, 3, 7, 7)
    assert stem.params["bias"].shape == (32,)
    np.testing.assert_allclose(net.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    assert net.margin == pytest.approx(0.04) and net.distance_threshold == pytest.approx(0.6)
    # affine layers are frozen batch norms: no zero scale
    affines = [lay for lay in net.layers if lay.spec.kind == "affine"]
    gammas = np.concatenate([lay.params["gamma"] for lay in affines])
    assert np.all(np.abs(gammas) > 0)


def test_keras_model_has_the_folded_parameters(embedder: ResNetEmbedder) -> None:
    # conv + fc parameters of the file (affine folded away) = what Keras holds
    net = resnet.read_dlib_resnet(resnet.locate_model_file())
    affine = sum(lay.params["gamma"].size * 2 for lay in net.layers if lay.spec.kind == "affine")
    assert embedder.model.count_params() == net.param_count - affine
    assert embedder.model.output_shape == (None, 128)


def test_corrupt_dat_is_refused(tmp_path: Path) -> None:
    data = resnet.locate_model_file().read_bytes()
    with pytest.raises(ModelFormatError, match="unexpected end of data"):
        resnet.parse_dlib_resnet(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="unexpected end of data"):
        resnet.parse_dlib_resnet(data[:-1])
    with pytest.raises(ModelFormatError, match="1 unexpected bytes after the network"):
        resnet.parse_dlib_resnet(data + b"\x00")
    # the fc layer's version int (the first after the loss record) 2 -> 3
    fc_version = data.index(b"\x01\x02", 17)
    flipped = bytearray(data)
    flipped[fc_version + 1] = 3
    with pytest.raises(ModelFormatError, match=r"version: expected 1 or 2, got 3"):
        resnet.parse_dlib_resnet(bytes(flipped))
    # a record name: the first conv's "con_4" -> "con_5"
    name_at = data.index(b"con_4")
    renamed = bytearray(data)
    renamed[name_at + 4] = ord("5")
    with pytest.raises(ModelFormatError, match="expected record 'con_4', found 'con_5'"):
        resnet.parse_dlib_resnet(bytes(renamed))


def test_load_reports_corrupt_and_missing_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / resnet.MODEL_FILE_NAME
    broken.write_bytes(resnet.locate_model_file().read_bytes()[:100_000])
    monkeypatch.setattr(resnet, "locate_model_file", lambda: broken)
    with pytest.raises(ModelFormatError, match="pip install face_recognition_models"):
        ResNetEmbedder.load(tmp_path / "cache")
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # import fails
    with pytest.raises(ModelError, match="pip install face_recognition_models"):
        ResNetEmbedder.load(tmp_path / "cache")


# ------------------------------------------------------------------ equivalence with dlib


@pytest.mark.oracle
def test_matches_dlib_on_real_chips(
    embedder: ResNetEmbedder, dlib_encoder: Any, real_chips: U8
) -> None:
    ours = embedder.embed_chips(real_chips)
    theirs = dlib_descriptors(dlib_encoder, real_chips)
    assert ours.shape == (len(real_chips), 128) and ours.dtype == np.float32
    diff = float(np.abs(ours - theirs).max())
    print(f"max abs diff vs dlib on {len(real_chips)} real chips: {diff:.3g}")
    assert diff <= REAL_BOUND
    # and the descriptors are meaningful: not normalised, norms near 1
    norms = np.linalg.norm(ours, axis=1)
    assert np.all((norms > 0.3) & (norms < 2.0))


@pytest.mark.oracle
def test_matches_dlib_on_synthetic_extremes(embedder: ResNetEmbedder, dlib_encoder: Any) -> None:
    chips = synthetic_chips()
    diff = np.abs(embedder.embed_chips(chips) - dlib_descriptors(dlib_encoder, chips)).max(axis=1)
    print(f"max abs diff vs dlib on black/white/noise chips: {diff}")
    assert float(diff.max()) <= SYNTHETIC_BOUND


# ------------------------------------------------------------------ batching and validation


def test_batch_invariance(embedder: ResNetEmbedder, real_chips: U8) -> None:
    chip = real_chips[:1]
    alone = embedder.embed_chips(chip)[0]
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (37, 150, 150, 3), dtype=np.uint8)
    batch[0] = chip[0]  # goes through the batch-32 function
    batch[36] = chip[0]  # the remainder: through the batch-1 function
    batch[20] = real_chips[1]
    out = embedder.embed_chips(batch)
    assert out.shape == (37, 128)
    assert float(np.abs(out[0] - alone).max()) <= 1e-6
    assert float(np.abs(out[36] - alone).max()) <= 1e-6
    assert float(np.abs(out[20] - embedder.embed_chips(real_chips[1:2])[0]).max()) <= 1e-6
    # the noise chips really are other inputs
    assert float(np.abs(out[1] - alone).max()) > 1e-2


def test_padded_remainder_matches(tmp_path_factory: pytest.TempPathFactory, real_chips: U8,
                                  embedder: ResNetEmbedder) -> None:
    only_eight = ResNetEmbedder.load(tmp_path_factory.mktemp("cache8"), batch_sizes=(8,))
    chips = real_chips[:3]
    np.testing.assert_allclose(
        only_eight.embed_chips(chips), embedder.embed_chips(chips), atol=1e-6, rtol=0
    )


def test_plan_chunks() -> None:
    assert plan_chunks(0, (1, 8, 32, 64)) == []
    assert plan_chunks(37, (1, 8, 32, 64)) == [(32, 32)] + [(1, 1)] * 5
    assert plan_chunks(201, (64, 1, 8, 32)) == [(64, 64)] * 3 + [(8, 8)] + [(1, 1)]
    assert plan_chunks(70, (8, 32)) == [(32, 32), (32, 32), (6, 8)]
    assert plan_chunks(3, (8,)) == [(3, 8)]


def test_embed_chips_validates_and_handles_empty(embedder: ResNetEmbedder) -> None:
    assert isinstance(embedder, ChipEmbedder)
    assert embedder.dimension == 128
    assert embedder.model_id.startswith("dlib_resnet_v1-") and len(embedder.model_id) == 31
    empty = embedder.embed_chips(np.zeros((0, 150, 150, 3), np.uint8))
    assert empty.shape == (0, 128) and empty.dtype == np.float32
    bad_inputs: list[Any] = [
        np.zeros((2, 150, 150, 3), np.float32),
        np.zeros((150, 150, 3), np.uint8),
        np.zeros((2, 160, 160, 3), np.uint8),
        np.zeros((2, 150, 150, 4), np.uint8),
    ]
    for bad in bad_inputs:
        with pytest.raises(ValueError, match="chips must be"):
            embedder.embed_chips(bad)


# ------------------------------------------------------------------ the weights cache


def test_cache_is_reused_and_rebuilt_when_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    embedder: ResNetEmbedder, real_chips: U8,
) -> None:
    caplog.set_level(logging.INFO, logger="facegate.engine.model_store")
    first = ResNetEmbedder.load(tmp_path, batch_sizes=(1,))
    assert first.source == "dat"
    (cache_file,) = (tmp_path / "models" / first.model_id).glob("weights-*.npz")
    stamp = cache_file.stat().st_mtime_ns

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the .dat was parsed although the cache is valid")

    with monkeypatch.context() as patch:
        patch.setattr(resnet, "parse_dlib_resnet", no_parse)
        second = ResNetEmbedder.load(tmp_path, batch_sizes=(1,))
    assert second.source == "cache"
    assert cache_file.stat().st_mtime_ns == stamp
    assert any("loaded converted weights from cache" in r.getMessage() for r in caplog.records)
    chip = real_chips[:1]
    np.testing.assert_array_equal(second.embed_chips(chip), embedder.embed_chips(chip))

    cache_file.write_bytes(b"PK\x03\x04 not really a zip file")
    caplog.clear()
    third = ResNetEmbedder.load(tmp_path, batch_sizes=(1,))
    assert third.source == "dat"
    assert any(r.levelno == logging.WARNING and "rebuilding" in r.getMessage()
               for r in caplog.records)
    np.testing.assert_array_equal(third.embed_chips(chip), embedder.embed_chips(chip))
    with np.load(cache_file) as archive:  # rewritten whole
        assert "conv28.kernel" in archive.files
