"""Shared fixtures: paths to real data, the real engine (built once)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.engine.types import FaceEncoder, Image

ROOT = Path(__file__).resolve().parents[1]


def lfw_path() -> Path:
    override = os.environ.get("FACEGATE_LFW_DIR")
    return Path(override) if override else ROOT.parent / "shared" / "data" / "lfw-view1"


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """LFW View 1 (research-only data beside the checkout, never committed)."""
    path = lfw_path()
    if not (path / "pairsDevTest.txt").is_file():
        pytest.skip(
            f"LFW View 1 not found at {path} (set FACEGATE_LFW_DIR); "
            "the project never ships LFW images"
        )
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Real photos shipped in face_recognition 1.3.0's sdist (downloaded once)."""
    from facegate.tools.samples import sample_faces_dir

    return sample_faces_dir()


@pytest.fixture(scope="session")
def load_sample(samples_dir: Path) -> object:
    from facegate.engine.images import load_image_file

    def _load(name: str) -> Image:
        return load_image_file(str(samples_dir / name))

    return _load


@pytest.fixture(scope="session")
def face_engine() -> Iterator[FaceEncoder]:
    """The real engine: MTCNN + dlib 5-point landmarks + dlib ResNet in TF."""
    from facegate.engine.factory import build_face_encoder

    engine = build_face_encoder()
    yield engine


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
