"""The definition of dlib's 128-d face ResNet (``anet_type``), layer by layer.

Owns :class:`LayerSpec`, :func:`network_spec` (input to output, including
the ``tag``/``skip`` wiring that the ``.dat`` file does not record), the
chip size and the output dimension. Both the parse of the file
(:mod:`facegate.engine.resnet_parse`) and the Keras rebuild
(:mod:`facegate.engine.resnet`) follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CHIP_SIZE",
    "DIMENSION",
    "WIRING_KINDS",
    "LayerKind",
    "LayerSpec",
    "network_spec",
]

CHIP_SIZE = 150
DIMENSION = 128

LayerKind = Literal[
    "con", "affine", "relu", "max_pool", "avg_pool", "tag", "skip", "add_prev", "fc"
]
WIRING_KINDS = frozenset({"tag", "skip"})
"""Layers with no record of their own: just a version int and the subnet."""


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
