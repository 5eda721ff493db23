"""Reading dlib's ``dlib_face_recognition_resnet_model_v1.dat``.

The source is that file from the ``face_recognition_models`` package
(public domain): a dlib serialization of a C++ template network whose byte
layout follows the type, so the parse here is *type-directed*:
:func:`parse_dlib_resnet` walks the file in the exact order dlib wrote it,
checking every version int, every record name, every shape and
hyper-parameter against :func:`~facegate.engine.resnet_spec.network_spec`,
and that the last byte read is the last byte of the file.

Layout of the file (outer to inner, see DLIB_MODEL_FACTS.md): the loss
layer's version and record, then one version int per layer from the output
end to the input end, then the input record, then each layer's own record
(plus three bools and its scratch tensors) from the input end to the output.

Owns :func:`locate_model_file`, :func:`read_dlib_resnet`,
:func:`parse_dlib_resnet` and what they return (:class:`DlibResNet`,
:class:`ParsedLayer`); :mod:`facegate.engine.resnet` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ModelError, ModelFormatError
from facegate.engine.dlib_serialize import DlibReader
from facegate.engine.resnet_spec import (
    CHIP_SIZE,
    WIRING_KINDS,
    LayerKind,
    LayerSpec,
    network_spec,
)

__all__ = [
    "INSTALL_HINT",
    "MODEL_FILE_NAME",
    "SOURCE_PACKAGE",
    "DlibResNet",
    "ParsedLayer",
    "locate_model_file",
    "parse_dlib_resnet",
    "read_dlib_resnet",
]

SOURCE_PACKAGE = "face_recognition_models"
INSTALL_HINT = f"pip install {SOURCE_PACKAGE}"
MODEL_FILE_NAME = "dlib_face_recognition_resnet_model_v1.dat"


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
