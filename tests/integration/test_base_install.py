"""`pip install -e .` without extras: a working lock client and ingest, and
no TensorFlow anywhere (what a lock vendor or the ingest image installs)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest
from secrets_env import TEST_SECRETS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def run(python: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(python), *args], capture_output=True, text=True, cwd="/", env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_base_install_runs_the_lock_client_and_ingest(tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", str(ROOT))
    installed = run(python, "-m", "pip", "list", "--format=freeze").lower()
    for heavy in ("tensorflow", "mtcnn", "matplotlib", "face-recognition-models", "keras"):
        assert f"\n{heavy}" not in f"\n{installed}", f"{heavy} came with the base install"
    # the matcher signs, the lock client verifies with the public key only
    out = run(
        python,
        "-c",
        "from facegate import LockState, verify_event, DoorEvent, Decision, Reason\n"
        "from facegate.core.signing import DoorSigner\n"
        "e = DoorEvent(id='a'*32, upload_id='b'*32, door='front', decision=Decision.OPEN,"
        " reason=Reason.GRANTED, person='alice', issued_at=10.0, expires_at=40.0,"
        " stream_id='10000-0')\n"
        "signer = DoorSigner.derive('base-install-secret', 'front')\n"
        "w = signer.sign(e)\n"
        "print(verify_event(w, signer.public_key.hex, 'front', now=20.0,"
        " guard=LockState('front')).person)\n",
    )
    assert out.strip() == "alice"
    # ingest and the matcher validate their settings (nothing to connect to here)
    env = {"PATH": "/usr/bin:/bin", "FACEGATE_ENV": "development", **TEST_SECRETS}
    assert "FACEGATE_INGEST_PORT=18700" in run(python, "-m", "services.ingest", "--check-config",
                                               env=env)
    assert "FACEGATE_THRESHOLD=0.6" in run(python, "-m", "services.matcher", "--check-config",
                                           env=env)
    # the engine says clearly what is missing rather than a bare ImportError deep inside
    proc = subprocess.run(
        [str(python), "-m", "facegate.tools.cli", "encode", str(ROOT / "README.md")],
        capture_output=True, text=True, cwd="/", env=env, timeout=120,
    )
    assert proc.returncode != 0
    assert "facegate[engine]" in proc.stderr, proc.stderr[-2000:]
    assert sys.version_info >= (3, 11)
