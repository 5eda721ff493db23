"""A reader for dlib's binary serialization format (pure numpy).

Facts (see dlib/serialize.h): integers of any width are one control byte
(low nibble = number of magnitude bytes, bit 7 = negative) followed by the
magnitude little-endian; floats are an int64 mantissa then an int16 exponent
(value = mantissa * 2**exponent, exponents 32000/32001/32002 are +inf, -inf,
NaN); strings are an unsigned length and raw bytes; bools are ASCII '1'/'0';
tensors are version 2, four int64 dims, then raw little-endian float32.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ModelFormatError


class DlibReader:
    """Sequential, bounds-checked reader over a dlib-serialized byte string."""

    def __init__(self, data: bytes, *, name: str = "<bytes>") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.name = name

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.name}: {what} (at byte {self._pos})")

    def _take(self, n: int) -> memoryview:
        if n < 0 or self._pos + n > len(self._data):
            raise self.fail(f"unexpected end of data reading {n} bytes")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def read_int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or (control & 0x70):
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.fail(f"float {mantissa} * 2**{exponent} is out of range") from None

    def read_bool(self) -> bool:
        b = self._take(1)[0]
        if b == ord("1"):
            return True
        if b == ord("0"):
            return False
        raise self.fail(f"bad bool byte 0x{b:02x}")

    def read_char(self) -> int:
        return int(self._take(1)[0])

    def read_string(self) -> str:
        n = self.read_int()
        if n < 0:
            raise self.fail("negative string length")
        return bytes(self._take(n)).decode("latin-1")

    def expect_int(self, expected: int, what: str) -> None:
        got = self.read_int()
        if got != expected:
            raise self.fail(f"{what}: expected {expected}, found {got}")

    def expect_string(self, expected: str) -> None:
        got = self.read_string()
        if got != expected:
            raise self.fail(f"expected record {expected!r}, found {got!r}")

    def read_tensor(self) -> npt.NDArray[np.float32]:
        """A dlib ``tensor``: version 2, (num_samples, k, nr, nc), float32 data."""
        self.expect_int(2, "tensor version")
        shape = tuple(self.read_int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """A dlib ``alias_tensor``: version 1 and a shape, no data."""
        self.expect_int(1, "alias_tensor version")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return (n, k, nr, nc)

    def read_float_matrix(self) -> npt.NDArray[np.float64]:
        """A dlib ``matrix<float/double>``: rows, cols (as ints), then row-major floats."""
        nr = self.read_int()
        nc = self.read_int()
        # dlib writes negative dims for column vectors in some versions; take magnitudes.
        nr, nc = abs(nr), abs(nc)
        values = [self.read_float() for _ in range(nr * nc)]
        return np.asarray(values, dtype=np.float64).reshape(nr, nc)

    def read_int_run(self, count: int | None = None) -> npt.NDArray[np.int64]:
        """The next ``count`` integers (all the remaining data when ``None``),
        decoded in bulk into an int64 array.

        For files that are long runs of integers and floats (a float is two
        integers: mantissa, exponent), such as dlib's shape predictors: about
        20x faster than calling :meth:`read_int` per value.
        """
        if count is not None and count < 0:
            raise self.fail(f"negative integer count {count}")
        raw = bytes(self._data[self._pos :])
        size = len(raw)
        starts: list[int] = []
        append = starts.append
        pos = 0
        if count is None:
            while pos < size:
                append(pos)
                pos += 1 + (raw[pos] & 0x0F)
        else:
            for _ in range(count):
                if pos >= size:
                    raise self.fail(f"unexpected end of data in a run of {count} integers")
                append(pos)
                pos += 1 + (raw[pos] & 0x0F)
        if pos > size:
            raise self.fail("unexpected end of data inside the last integer of a run")
        if not starts:
            self._pos += pos
            return np.zeros(0, dtype=np.int64)
        first = np.asarray(starts, dtype=np.int64)
        buf = np.frombuffer(raw, dtype=np.uint8)
        control = buf[first]
        nbytes = (control & 0x0F).astype(np.int64)
        bad = (nbytes == 0) | (nbytes > 8) | ((control & 0x70) != 0)
        if bad.any():
            where = int(first[int(np.argmax(bad))])
            raise ModelFormatError(
                f"{self.name}: bad integer control byte 0x{raw[where]:02x} "
                f"(at byte {self._pos + where})"
            )
        padded = np.concatenate([buf, np.zeros(8, dtype=np.uint8)])
        magnitude = np.zeros(first.shape, dtype=np.uint64)
        for j in range(8):
            byte = padded[first + 1 + j].astype(np.uint64)
            byte[nbytes <= j] = 0
            magnitude |= byte << np.uint64(8 * j)
        if (magnitude >> np.uint64(63)).any():
            raise self.fail("integer magnitude does not fit in int64")
        values = magnitude.astype(np.int64)
        negative = (control & 0x80) != 0
        values[negative] = -values[negative]
        self._pos += pos
        return values
