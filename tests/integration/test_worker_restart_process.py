"""A real matcher worker (real Celery, real Redis) that stops on an
"Unrecoverable error" after it was ready starts again in the same process,
and one stopped with SIGTERM stays stopped.

The regression ``bench/chaos.py``'s ``redis-kill`` found: kombu's Redis
transport raised ``AttributeError`` while closing the connection Redis had
dropped, Celery stopped the worker, and on the local stack (no supervisor)
the encoder never came back. The fault is injected into Celery's consumer
loop once (``worker_fault.py``), since a Redis restart triggers it only now
and then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facegate.tools.devstack import Stack

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


def wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"worker exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"no {path.name} within {timeout_s} s"
        time.sleep(0.1)


def test_a_worker_that_fails_after_ready_starts_again(
    stack: Stack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update(stack_env)
    env.update({"FACEGATE_LOG_LEVEL": "INFO", "WORKER_FAULT_ONCE": "1"})
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker_fault.py"), "--ready-file", str(ready),
             "--hostname", f"fault-{os.getpid()}@%h"],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        wait_for(ready, proc)
        ready.unlink()
        # the injected failure, then the same process runs the worker again
        wait_for(ready, proc)
        text = log.read_text()
        assert "Unrecoverable error" in text and "starting again" in text, text[-3000:]
        assert f"clean run, pid {proc.pid}" in text  # executed again, same pid
        assert proc.poll() is None
        # asked to stop: it stops, and does not start again
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert log.read_text().count("starting again") == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
