"""Real face photos that registry packages ship, for demos and tests.

``face_recognition`` 1.3.0's source distribution on PyPI carries
``tests/test_images/`` (US government photos of Barack Obama and Joe Biden,
public domain). We fetch that sdist with pip (no dlib build, nothing
installed), extract only the images, and cache them under the user cache.
``scikit-image``'s wheel carries ``skimage/data/astronaut.png`` (NASA
portrait of Eileen Collins, public domain): a face nobody enrols, fetched the
same way (:func:`astronaut_path`). ``matplotlib``'s wheel (installed with the
engine extra) carries ``mpl-data/sample_data/grace_hopper.jpg`` (US Navy
portrait of Grace Hopper, public domain): a third resident for the demo
(:func:`grace_hopper_path`).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from facegate.core.errors import ConfigError
from facegate.runtime.paths import cache_root

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


def _pip_download(
    folder: str, requirement: str, options: list[str], pattern: str, what: str
) -> list[Path]:
    """Fetch one distribution with pip (nothing installed); the files in
    ``folder`` matching ``pattern``, or ConfigError naming ``what``."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        *options, "-d", folder, requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(Path(folder).glob(pattern))
    if proc.returncode != 0 or not found:
        raise ConfigError(
            f"could not download {what} ({requirement} from PyPI): "
            f"{proc.stderr.strip()[-500:]}"
        )
    return found


def sample_faces_dir() -> Path:
    """Return a folder holding :data:`SAMPLE_NAMES`, downloading them once."""
    target = cache_root() / "samples" / "face_recognition-1.3.0"
    if all((target / n).is_file() for n in SAMPLE_NAMES):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archives = _pip_download(
            tmp,
            SDIST_REQUIREMENT,
            ["--no-binary", ":all:", "--no-build-isolation"],
            "face_recognition-1.3.0.tar.gz",
            "the sample faces",
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


SKIMAGE_REQUIREMENT = "scikit-image==0.25.2"


def astronaut_path() -> Path:
    """``astronaut.png`` from scikit-image's wheel, downloaded once (not installed)."""
    target = cache_root() / "samples" / "scikit-image-0.25.2" / "astronaut.png"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheels = _pip_download(
            tmp, SKIMAGE_REQUIREMENT, ["--only-binary", ":all:"], "scikit_image-*.whl",
            "the astronaut portrait",
        )
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read("skimage/data/astronaut.png")
            except KeyError as exc:
                raise ConfigError(f"{wheels[0].name} lacks skimage/data/astronaut.png") from exc
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.rename(target)
    return target


def grace_hopper_path() -> Path:
    """``grace_hopper.jpg`` from the installed matplotlib (no download)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("matplotlib is not installed (pip install 'facegate[engine]')")
    for root in spec.submodule_search_locations:
        path = Path(root) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if path.is_file():
            return path
    raise ConfigError("this matplotlib does not ship sample_data/grace_hopper.jpg")
