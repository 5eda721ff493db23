"""dlib's serialization primitives, byte for byte (examples from DLIB_MODEL_FACTS.md)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from facegate.core.errors import ModelFormatError
from facegate.engine.dlib_serialize import DlibReader

pytestmark = pytest.mark.unit


def enc_int(value: int) -> bytes:
    """dlib's integer encoding (an independent writer for round trips)."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def enc_tensor(array: np.ndarray) -> bytes:
    head = enc_int(2) + b"".join(enc_int(d) for d in array.shape)
    return head + array.astype("<f4").tobytes()


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\x01\x00", 0),
        (b"\x01\x02", 2),
        (b"\x02\x80\x12", 4736),
        (b"\x81\x1c", -28),
        (b"\x08" + (2**63 - 1).to_bytes(8, "little"), 2**63 - 1),
        (b"\x88" + (2**63).to_bytes(8, "little"), -(2**63)),
    ],
)
def test_integer_examples(data: bytes, value: int) -> None:
    reader = DlibReader(data)
    assert reader.read_int() == value
    assert reader.at_end()


@pytest.mark.parametrize("value", [0, 1, -1, 255, 256, -65536, 22_466_066, -(2**40) + 3])
def test_integer_round_trip(value: int) -> None:
    reader = DlibReader(enc_int(value) + b"tail")
    assert reader.read_int() == value
    assert reader.remaining == 4


def test_float_is_mantissa_then_exponent() -> None:
    # the margin of the real loss layer: 10737418 * 2**-28 (float 0.04)
    reader = DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c")
    value = reader.read_float()
    assert value == 10737418 * 2.0**-28
    assert struct.unpack("<f", struct.pack("<f", value))[0] == pytest.approx(0.04, rel=1e-7)
    assert reader.at_end()
    # reading the fields swapped (what serialize.h's comment claims) cannot work
    with pytest.raises(ModelFormatError, match="out of range"):
        DlibReader(enc_int(-28) + enc_int(10737418)).read_float()


@pytest.mark.parametrize(
    ("exponent", "check"),
    [
        (32000, lambda v: v == math.inf),
        (32001, lambda v: v == -math.inf),
        (32002, math.isnan),
    ],
)
def test_float_special_exponents(exponent: int, check: object) -> None:
    value = DlibReader(enc_int(0) + enc_int(exponent)).read_float()
    assert callable(check) and check(value)


def test_float_negative_mantissa() -> None:
    assert DlibReader(enc_int(-3) + enc_int(-1)).read_float() == -1.5


def test_bool_char_and_string() -> None:
    reader = DlibReader(b"10" + b"\xff" + enc_int(7) + b"affine_")
    assert reader.read_bool() is True
    assert reader.read_bool() is False
    assert reader.read_char() == 255
    assert reader.read_string() == "affine_"
    assert reader.at_end()


def test_expect_helpers_accept_and_reject() -> None:
    reader = DlibReader(enc_int(2) + enc_int(5) + b"fc_2" + enc_int(4) + b"fc_2")
    reader.expect_int(2, "version")
    with pytest.raises(ModelFormatError, match=r"version: expected 1, found 5"):
        reader.expect_int(1, "version")
    with pytest.raises(ModelFormatError, match="bad integer control byte"):
        reader.expect_string("fc_2")  # 'f' (0x66) is not a control byte
    reader = DlibReader(enc_int(4) + b"fc_2" + enc_int(5) + b"con_4")
    reader.expect_string("fc_2")
    with pytest.raises(ModelFormatError, match=r"expected record 'relu_', found 'con_4'"):
        reader.expect_string("relu_")


def test_tensor_and_alias_tensor() -> None:
    array = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) - 7.5
    alias = enc_int(1) + b"".join(enc_int(d) for d in (1, 32, 1, 1))
    reader = DlibReader(enc_tensor(array) + alias + enc_tensor(np.zeros((0, 0, 0, 0))))
    got = reader.read_tensor()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, array)
    assert reader.read_alias_tensor() == (1, 32, 1, 1)
    assert reader.read_tensor().shape == (0, 0, 0, 0)
    assert reader.at_end()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "unexpected end"),
        (b"\x02\x01", "unexpected end"),
        (b"\x00", "bad integer control byte 0x00"),
        (b"\x09" + bytes(9), "bad integer control byte 0x09"),
        (b"\x11\x00", "bad integer control byte 0x11"),
    ],
)
def test_bad_integers(data: bytes, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        DlibReader(data, name="x.dat").read_int()


def test_errors_name_the_file_and_offset() -> None:
    reader = DlibReader(b"\x01\x02\x00", name="model.dat")
    reader.read_int()
    expected = r"^model\.dat: bad integer control byte 0x00 \(at byte 3\)$"
    with pytest.raises(ModelFormatError, match=expected):
        reader.read_int()


def test_bad_bool_string_and_tensors() -> None:
    with pytest.raises(ModelFormatError, match="bad bool byte 0x74"):
        DlibReader(b"t").read_bool()
    with pytest.raises(ModelFormatError, match="negative string length"):
        DlibReader(enc_int(-3) + b"abc").read_string()
    with pytest.raises(ModelFormatError, match="unexpected end"):
        DlibReader(enc_int(10) + b"short").read_string()
    with pytest.raises(ModelFormatError, match="tensor version: expected 2, found 1"):
        DlibReader(enc_int(1) + enc_int(0) * 4).read_tensor()
    with pytest.raises(ModelFormatError, match="negative tensor shape"):
        DlibReader(enc_int(2) + enc_int(1) + enc_int(-2) + enc_int(1) * 2).read_tensor()
    # the data of a tensor that declares more floats than the file holds
    truncated = enc_tensor(np.ones((1, 1, 2, 2), dtype=np.float32))[:-1]
    with pytest.raises(ModelFormatError, match="unexpected end of data reading 16 bytes"):
        DlibReader(truncated).read_tensor()
    with pytest.raises(ModelFormatError, match="alias_tensor version: expected 1, found 2"):
        DlibReader(enc_int(2) + enc_int(1) * 4).read_alias_tensor()
