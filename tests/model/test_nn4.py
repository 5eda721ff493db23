"""nn4.small2 (the seeds' model): architecture, CSV weight loader, embedder.

The real weights ship with no package, so the loader is checked on CSV files
written here from randomly initialised models, in the notebooks' layout
(conv ``(out, in, kh, kw)``, dense ``(out, in)``), by a writer in this file
that does not share code with the loader. The numpy input preparation is
in ``tests/unit/test_nn4_preprocess.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.core.errors import ConfigError, ModelFormatError
from facegate.engine.types import ChipEmbedder
from facegate.training.nn4 import (
    LAYER_NAMES,
    PARAMETER_COUNT,
    Nn4Embedder,
    build_nn4_small2,
    load_csv_weights,
    preprocess_96,
    resize_chips_96,
    save_csv_weights,
)

# model: builds nn4.small2 in Keras/TensorFlow (random weights, no pretrained files).
pytestmark = [pytest.mark.model, pytest.mark.slow]

# The notebooks' ``conv_shape`` table (fr_utils.py), (out, in, kh, kw).
NOTEBOOK_CONV_SHAPES = {
    "conv1": (64, 3, 7, 7),
    "conv2": (64, 64, 1, 1),
    "conv3": (192, 64, 3, 3),
    "inception_3a_1x1_conv": (64, 192, 1, 1),
    "inception_3a_pool_conv": (32, 192, 1, 1),
    "inception_3a_5x5_conv1": (16, 192, 1, 1),
    "inception_3a_5x5_conv2": (32, 16, 5, 5),
    "inception_3a_3x3_conv1": (96, 192, 1, 1),
    "inception_3a_3x3_conv2": (128, 96, 3, 3),
    "inception_3b_3x3_conv1": (96, 256, 1, 1),
    "inception_3b_3x3_conv2": (128, 96, 3, 3),
    "inception_3b_5x5_conv1": (32, 256, 1, 1),
    "inception_3b_5x5_conv2": (64, 32, 5, 5),
    "inception_3b_pool_conv": (64, 256, 1, 1),
    "inception_3b_1x1_conv": (64, 256, 1, 1),
    "inception_3c_3x3_conv1": (128, 320, 1, 1),
    "inception_3c_3x3_conv2": (256, 128, 3, 3),
    "inception_3c_5x5_conv1": (32, 320, 1, 1),
    "inception_3c_5x5_conv2": (64, 32, 5, 5),
    "inception_4a_3x3_conv1": (96, 640, 1, 1),
    "inception_4a_3x3_conv2": (192, 96, 3, 3),
    "inception_4a_5x5_conv1": (32, 640, 1, 1),
    "inception_4a_5x5_conv2": (64, 32, 5, 5),
    "inception_4a_pool_conv": (128, 640, 1, 1),
    "inception_4a_1x1_conv": (256, 640, 1, 1),
    "inception_4e_3x3_conv1": (160, 640, 1, 1),
    "inception_4e_3x3_conv2": (256, 160, 3, 3),
    "inception_4e_5x5_conv1": (64, 640, 1, 1),
    "inception_4e_5x5_conv2": (128, 64, 5, 5),
    "inception_5a_3x3_conv1": (96, 1024, 1, 1),
    "inception_5a_3x3_conv2": (384, 96, 3, 3),
    "inception_5a_pool_conv": (96, 1024, 1, 1),
    "inception_5a_1x1_conv": (256, 1024, 1, 1),
    "inception_5b_3x3_conv1": (96, 736, 1, 1),
    "inception_5b_3x3_conv2": (384, 96, 3, 3),
    "inception_5b_pool_conv": (96, 736, 1, 1),
    "inception_5b_1x1_conv": (256, 736, 1, 1),
}


def randomise(model: Any, seed: int) -> None:
    """Random weights everywhere, including batch-norm statistics (which
    Keras initialises to 0 and 1, hiding mistakes in their order)."""
    rng = np.random.default_rng(seed)
    for name in LAYER_NAMES:
        layer = model.get_layer(name)
        new = []
        for w in layer.get_weights():
            arr = rng.normal(0.0, 0.1, size=w.shape).astype(np.float32)
            new.append(arr)
        if type(layer).__name__ == "BatchNormalization":
            new[0] = rng.uniform(0.5, 1.5, size=new[0].shape).astype(np.float32)
            new[3] = rng.uniform(0.5, 2.0, size=new[3].shape).astype(np.float32)
        layer.set_weights(new)


def write_notebook_csv(model: Any, folder: Path) -> None:
    """The notebooks' file layout, written independently of the loader."""
    folder.mkdir(parents=True, exist_ok=True)

    def put(stem: str, arr: np.ndarray[Any, Any]) -> None:
        # Several values per line, like genfromtxt-readable exports.
        flat = np.asarray(arr, dtype=np.float32).ravel()
        lines = [
            ",".join(f"{v:.9g}" for v in flat[i : i + 64].tolist()) for i in range(0, flat.size, 64)
        ]
        (folder / f"{stem}.csv").write_text("\n".join(lines) + "\n")

    for name in LAYER_NAMES:
        w = model.get_layer(name).get_weights()
        if name == "dense_layer":
            put("dense_w", w[0].T)  # (128, 736)
            put("dense_b", w[1])
        elif "conv" in name:
            put(f"{name}_w", np.transpose(w[0], (3, 2, 0, 1)))  # (out, in, kh, kw)
            put(f"{name}_b", w[1])
        else:
            for suffix, arr in zip("wbmv", w, strict=True):
                put(f"{name}_{suffix}", arr)


@pytest.fixture(scope="module")
def source_model() -> Any:
    model = build_nn4_small2()
    randomise(model, seed=7)
    return model


@pytest.fixture(scope="module")
def weights_dir(source_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nn4_csv")
    write_notebook_csv(source_model, folder)
    return folder


@pytest.fixture(scope="module")
def inputs() -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(3)
    return preprocess_96(rng.integers(0, 256, size=(3, 96, 96, 3), dtype=np.uint8))


@pytest.fixture
def linked_copy(weights_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the weight folder made of symlinks (cheap to break one file)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for f in weights_dir.iterdir():
        (folder / f.name).symlink_to(f)
    yield folder


def test_parameter_count_is_the_notebooks(source_model: Any) -> None:
    assert source_model.count_params() == 3_743_280
    assert PARAMETER_COUNT == 3_743_280


def test_layer_names_and_conv_shapes_match_the_notebook(source_model: Any) -> None:
    names = {layer.name for layer in source_model.layers}
    assert set(LAYER_NAMES) <= names
    assert len(LAYER_NAMES) == 75
    convs = [n for n in LAYER_NAMES if "conv" in n]
    assert set(convs) == set(NOTEBOOK_CONV_SHAPES)
    for name, (cout, cin, kh, kw) in NOTEBOOK_CONV_SHAPES.items():
        kernel = source_model.get_layer(name).get_weights()[0]
        assert kernel.shape == (kh, kw, cin, cout), name
    assert source_model.get_layer("dense_layer").get_weights()[0].shape == (736, 128)
    # bn1 keeps Keras' default epsilon as in the notebook; the others 1e-5.
    assert source_model.get_layer("bn1").epsilon == pytest.approx(1e-3)
    assert source_model.get_layer("bn2").epsilon == pytest.approx(1e-5)
    assert source_model.get_layer("inception_5b_1x1_bn").epsilon == pytest.approx(1e-5)


def test_output_is_128_d_and_unit_norm(source_model: Any, inputs: np.ndarray[Any, Any]) -> None:
    out = np.asarray(source_model(inputs, training=False))
    assert out.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(out[0], out[1])


def test_csv_round_trip_gives_identical_outputs(
    source_model: Any, weights_dir: Path, inputs: np.ndarray[Any, Any]
) -> None:
    fresh = build_nn4_small2()
    before = np.asarray(fresh(inputs, training=False))
    load_csv_weights(fresh, weights_dir)
    for name in LAYER_NAMES:
        for got, want in zip(
            fresh.get_layer(name).get_weights(),
            source_model.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want, err_msg=name)
    expected = np.asarray(source_model(inputs, training=False))
    after = np.asarray(fresh(inputs, training=False))
    np.testing.assert_array_equal(after, expected)
    assert not np.allclose(before, expected)


def test_save_csv_weights_is_the_inverse_of_the_loader(
    source_model: Any, tmp_path: Path, inputs: np.ndarray[Any, Any]
) -> None:
    save_csv_weights(source_model, tmp_path)
    assert (tmp_path / "dense_w.csv").is_file()
    assert (tmp_path / "inception_3a_pool_bn_v.csv").is_file()
    fresh = build_nn4_small2()
    load_csv_weights(fresh, tmp_path)
    np.testing.assert_array_equal(
        np.asarray(fresh(inputs, training=False)),
        np.asarray(source_model(inputs, training=False)),
    )


def test_conv_weights_are_read_as_out_in_kh_kw_cross_correlation(
    weights_dir: Path, source_model: Any
) -> None:
    """conv1 on a random input equals a numpy cross-correlation computed
    straight from the CSV numbers in (out, in, kh, kw) order."""
    fresh = build_nn4_small2()
    load_csv_weights(fresh, weights_dir)
    w = np.array(
        [
            float(v)
            for v in (weights_dir / "conv1_w.csv").read_text().replace("\n", ",").split(",")
            if v
        ],
        dtype=np.float64,
    ).reshape(64, 3, 7, 7)
    b = np.array(
        [
            float(v)
            for v in (weights_dir / "conv1_b.csv").read_text().replace("\n", ",").split(",")
            if v
        ]
    )
    rng = np.random.default_rng(11)
    x = rng.normal(size=(1, 30, 30, 3)).astype(np.float32)
    got = np.asarray(fresh.get_layer("conv1")(x))[0]  # stride 2, valid -> 12x12
    windows = np.lib.stride_tricks.sliding_window_view(x[0].astype(np.float64), (7, 7), axis=(0, 1))
    windows = windows[::2, ::2]  # (12, 12, 3, 7, 7)
    want = np.einsum("yxiab,oiab->yxo", windows, w) + b
    assert got.shape == want.shape == (12, 12, 64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_wrong_shape_names_the_file_and_leaves_the_model_alone(
    linked_copy: Path, inputs: np.ndarray[Any, Any]
) -> None:
    target = linked_copy / "inception_4a_3x3_conv2_w.csv"
    values = target.read_text().replace("\n", ",").split(",")
    target.unlink()
    kept = [v for v in values if v][:-5]
    target.write_text(",".join(kept) + "\n")
    model = build_nn4_small2()
    before = np.asarray(model(inputs, training=False))
    with pytest.raises(ModelFormatError, match=r"inception_4a_3x3_conv2_w\.csv"):
        load_csv_weights(model, linked_copy)
    np.testing.assert_array_equal(np.asarray(model(inputs, training=False)), before)


def test_bn_vector_of_the_wrong_length_is_refused(linked_copy: Path) -> None:
    target = linked_copy / "bn3_m.csv"
    target.unlink()
    target.write_text(",".join(["0.5"] * 191) + "\n")
    with pytest.raises(ModelFormatError, match=r"bn3_m\.csv.*191 values, expected 192"):
        load_csv_weights(build_nn4_small2(), linked_copy)


def test_missing_file_names_the_file(linked_copy: Path) -> None:
    (linked_copy / "dense_b.csv").unlink()
    with pytest.raises(ModelFormatError, match=r"dense_b\.csv: missing"):
        load_csv_weights(build_nn4_small2(), linked_copy)


def test_non_numeric_file_is_refused(linked_copy: Path) -> None:
    target = linked_copy / "conv2_b.csv"
    target.unlink()
    target.write_text("0.1,abc," + ",".join(["0"] * 62) + "\n")
    with pytest.raises(ModelFormatError, match=r"conv2_b\.csv"):
        load_csv_weights(build_nn4_small2(), linked_copy)


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        load_csv_weights(build_nn4_small2(), tmp_path / "nope")


def test_embedder_loads_and_embeds_chips(
    weights_dir: Path, linked_copy: Path, source_model: Any
) -> None:
    emb = Nn4Embedder.load(weights_dir)
    assert isinstance(emb, ChipEmbedder)
    assert emb.dimension == 128
    assert emb.model_id.startswith("nn4.small2-csv-")
    assert len(emb.model_id.removeprefix("nn4.small2-csv-")) == 12
    assert Nn4Embedder.load(weights_dir).model_id == emb.model_id

    rng = np.random.default_rng(5)
    chips = rng.integers(0, 256, size=(4, 150, 150, 3), dtype=np.uint8)
    out = emb.embed_chips(chips)
    assert out.shape == (4, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    expected = np.asarray(source_model(preprocess_96(resize_chips_96(chips)), training=False))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert emb.embed_chips(np.zeros((0, 150, 150, 3), dtype=np.uint8)).shape == (0, 128)

    # Different weights, different id.
    target = linked_copy / "dense_b.csv"
    target.unlink()
    target.write_text(",".join(["0.25"] * 128) + "\n")
    assert Nn4Embedder.load(linked_copy).model_id != emb.model_id
