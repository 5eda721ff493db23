"""A Celery worker that stops on an error after it was ready starts again.

``bench/chaos.py``'s ``redis-kill`` found it: when Redis is killed, kombu's
Redis transport may raise ``AttributeError`` while it closes the dropped
connection, Celery calls that an "Unrecoverable error" and the worker exits
with status 1; the local stack has no supervisor, so the encoder was gone
and every later upload waited forever. ``run_worker`` now re-executes the
process (same arguments) in that case, and only in that case. Celery's
``worker_main`` is replaced here by a stand-in that says ready (or not) and
stops as Celery does: ``worker_main`` returns and the status is left on
the worker (``WorkController.exitcode``), or ``SystemExit`` is raised;
``os.execv`` by a recorder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.signals import worker_ready, worker_shutting_down
from secrets_env import TEST_SECRETS

from facegate.adapters import celery_worker
from facegate.adapters.celery_worker import WorkerSpec, exit_status, run_worker
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit


class ExecCalledError(Exception):
    """``os.execv`` does not return; the recorder raises this instead."""


class FakeConsumer:
    """What Celery's ``worker_ready`` names as sender: the consumer."""

    def __init__(self, controller: object) -> None:
        self.controller = controller


@dataclass
class FakeApp:
    closed: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.closed.append("closed")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in TEST_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FACEGATE_LOG_LEVEL", "WARNING")
    state: dict[str, Any] = {
        "ready": True, "status": 1, "signal": False, "raise": False, "execv": [],
    }

    def worker_main(self: Celery, argv: list[str]) -> None:
        controller = SimpleNamespace(exitcode=None)
        if state["ready"]:
            worker_ready.send(sender=FakeConsumer(controller))
        if state["signal"]:  # Celery's SIGTERM/SIGINT handler
            worker_shutting_down.send(sender="worker", sig="SIGTERM", how="Warm", exitcode=0)
        if state["raise"]:
            raise SystemExit(state["status"])
        controller.exitcode = state["status"]  # WorkController.stop(exitcode=...)

    def execv(path: str, args: list[str]) -> None:
        state["execv"].append((path, args, list(app.closed)))
        raise ExecCalledError

    app = FakeApp()
    state["app"] = app
    monkeypatch.setattr(Celery, "worker_main", worker_main)
    monkeypatch.setattr(celery_worker.os, "execv", execv)
    monkeypatch.setattr(celery_worker.time, "sleep", lambda s: None)
    state["spec"] = WorkerSpec(
        name="matcher",
        settings_cls=MatcherSettings,
        build=lambda settings: app,
        register=lambda celery, a: None,
        worker_argv=lambda settings, extra: [],
    )
    return state


@pytest.mark.parametrize("raises", [False, True])
def test_a_worker_that_failed_after_it_was_ready_runs_again(
    world: dict[str, Any], raises: bool
) -> None:
    world["raise"] = raises  # "Unrecoverable error": status 1 on the worker, or SystemExit(1)
    with pytest.raises(ExecCalledError):
        run_worker(world["spec"], [])
    [(path, args, closed_before)] = world["execv"]
    assert path == sys.executable
    assert args == [sys.executable, *sys.orig_argv[1:]]  # the same command line
    assert closed_before == ["closed"]  # the app was closed first


def test_a_worker_asked_to_stop_stops(world: dict[str, Any]) -> None:
    world["status"], world["signal"] = 0, True  # a warm shutdown (SIGTERM)
    assert run_worker(world["spec"], []) == 0
    assert world["execv"] == [] and world["app"].closed == ["closed"]


def test_a_signal_stops_it_even_with_a_failure_status(world: dict[str, Any]) -> None:
    world["signal"] = True  # Ctrl-C twice: a cold shutdown, status 1
    assert run_worker(world["spec"], []) == 1
    assert world["execv"] == []


def test_a_worker_that_never_was_ready_exits_with_its_status(world: dict[str, Any]) -> None:
    world["ready"] = False  # no crash loop for a worker that cannot start
    assert run_worker(world["spec"], []) == 0  # Celery kept the status to itself
    world["raise"] = True
    assert run_worker(world["spec"], []) == 1
    assert world["execv"] == []


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (1, 1), (2, 2), ("boom", 1)])
def test_exit_status(code: object, status: int) -> None:
    assert exit_status(code) == status
