"""Shared fixtures: paths to real data, the real engine (built once); and
the tier rules, checked on every run:

* every test carries a tier marker (:data:`TIERS`) and sits in its folder
  (:data:`FOLDER_MARKERS`); a ``unit`` test carries no other tier;
* a ``unit`` test never imports TensorFlow: the test that does fails, and a
  run of ``unit`` tests only (``make test-fast``) fails if TensorFlow got
  imported at all (collection, fixtures).
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.engine.types import FaceEncoder, Image
from facegate.tools.settings import ToolSettings

ROOT = Path(__file__).resolve().parents[1]


def lfw_path() -> Path:
    override = ToolSettings.from_env().lfw_dir
    return override if override is not None else ROOT.parent / "shared" / "data" / "lfw-view1"


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


# ---------------------------------------------------------------------------
# Tiers

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e", "model", "lfw")
"""What a test needs; ``oracle``, ``slow`` and ``bench`` are extra markers."""
FOLDER_MARKERS = {
    "unit": "unit",
    "integration": "integration",
    "e2e": "e2e",
    "model": "model",
    "lfw": "lfw",
    "bench": "bench",  # plus the tier each benchmark smoke needs
}
HEAVY_MODULES = ("tensorflow", "keras")


def tier_problems(item: pytest.Item) -> list[str]:
    """Why ``item`` breaks the tier rules (empty when it keeps them)."""
    if not item.path.is_relative_to(TESTS):
        return []
    names = {mark.name for mark in item.iter_markers()}
    problems = []
    tiers = names.intersection(TIERS)
    if not tiers:
        problems.append(f"no tier marker (one of {', '.join(TIERS)})")
    if "unit" in tiers and len(tiers) > 1:
        others = ", ".join(sorted(tiers - {"unit"}))
        problems.append(f"a unit test cannot also be {others}")
    parts = item.path.relative_to(TESTS).parts
    folder = parts[0] if len(parts) > 1 else ""
    wanted = FOLDER_MARKERS.get(folder)
    if wanted is None:
        problems.append(f"not in a tier folder (tests/{{{','.join(FOLDER_MARKERS)}}}/)")
    elif wanted not in names:
        problems.append(f"in tests/{folder}/ but without the {wanted!r} marker")
    if "bench" in names and folder != "bench":
        problems.append("a bench test belongs in tests/bench/")
    return problems


@pytest.hookimpl(tryfirst=True)  # before -m/-k deselect: every collected test is checked
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bad = [f"  {item.nodeid}: {'; '.join(p)}" for item in items if (p := tier_problems(item))]
    if bad:
        raise pytest.UsageError(
            "tests that break the tier rules (markers in pyproject.toml, see README "
            "'Development'; give each file `pytestmark = pytest.mark.<tier>`):\n" + "\n".join(bad)
        )


def _heavy_loaded() -> list[str]:
    return [name for name in HEAVY_MODULES if name in sys.modules]


_tensorflow_came_in: list[str] = []  # where TensorFlow was first imported in this process


def _note_heavy(where: str, before: bool) -> bool:
    """Record ``where`` if TensorFlow arrived there; True if it did."""
    arrived = not before and bool(_heavy_loaded())
    if arrived and not _tensorflow_came_in:
        _tensorflow_came_in.append(where)
    return arrived


def pytest_sessionstart(session: pytest.Session) -> None:
    _note_heavy("before collection (a plugin or a conftest)", before=False)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    before = bool(_heavy_loaded())
    report = yield
    _note_heavy(f"while collecting {collector.nodeid or 'the session'}", before)
    return report


@pytest.fixture(autouse=True)
def _unit_tests_run_without_tensorflow(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the unit test that imports TensorFlow (checked only while it
    has not been imported yet: in a unit-only run, for every unit test)."""
    before = bool(_heavy_loaded())
    yield
    if _note_heavy(f"in {request.node.nodeid}", before) and request.node.get_closest_marker("unit"):
        pytest.fail(
            f"{request.node.nodeid} imported TensorFlow ({', '.join(_heavy_loaded())}): unit "
            "tests run without it; move the test to tests/model/ (marker model)",
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run of unit tests only must not have imported TensorFlow at all."""
    items = getattr(session, "items", [])
    if not items or not all(item.get_closest_marker("unit") for item in items):
        return
    if not _heavy_loaded():
        return
    where = _tensorflow_came_in[0] if _tensorflow_came_in else "somewhere"
    message = (
        "this run selected unit tests only, yet TensorFlow was imported "
        f"({', '.join(_heavy_loaded())}; first {where}): unit tests need no TensorFlow"
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "tier rule broken", red=True)
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
