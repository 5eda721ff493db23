"""Real face photos that a registry package ships, for demos and tests.

``face_recognition`` 1.3.0's source distribution on PyPI carries
``tests/test_images/`` (US government photos of Barack Obama and Joe Biden,
public domain). We fetch that sdist with pip (no dlib build, nothing
installed), extract only the images, and cache them under the user cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from facegate.errors import ConfigError

SDIST_REQUIREMENT = "face_recognition==1.3.0"
SAMPLE_NAMES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "biden.jpg",
    "32bit.png",
)


def cache_root() -> Path:
    """The user cache directory of facegate (``$FACEGATE_CACHE_DIR`` overrides)."""
    override = os.environ.get("FACEGATE_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facegate"


def sample_faces_dir() -> Path:
    """Return a folder holding :data:`SAMPLE_NAMES`, downloading them once."""
    target = cache_root() / "samples" / "face_recognition-1.3.0"
    if all((target / n).is_file() for n in SAMPLE_NAMES):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "--no-build-isolation", "-d", tmp, SDIST_REQUIREMENT,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        archives = list(Path(tmp).glob("face_recognition-1.3.0.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise ConfigError(
                f"could not download the sample faces ({SDIST_REQUIREMENT} sdist from PyPI): "
                f"{proc.stderr.strip()[-500:]}"
            )
        staging = Path(tmp) / "out"
        staging.mkdir()
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                wanted = "/tests/test_images/" in member.name and name in SAMPLE_NAMES
                if member.isfile() and wanted:
                    src = tar.extractfile(member)
                    if src is not None:
                        (staging / name).write_bytes(src.read())
        missing = [n for n in SAMPLE_NAMES if not (staging / n).is_file()]
        if missing:
            raise ConfigError(f"the {SDIST_REQUIREMENT} sdist lacks {missing}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_suffix(".partial")
        shutil.rmtree(tmp_target, ignore_errors=True)
        shutil.copytree(staging, tmp_target)
        shutil.rmtree(target, ignore_errors=True)
        tmp_target.rename(target)
    return target
