"""The one retry policy of the Celery tasks (a fake bound task, no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from facegate.adapters.retries import MAX_RETRIES, backoff_s, run_with_retries
from facegate.core.errors import ImageError, RedisUnavailableError

pytestmark = pytest.mark.unit


class Retry(Exception):  # noqa: N818 - Celery's name
    pass


@dataclass
class FakeTask:
    retries: int = 0
    max_retries: int = MAX_RETRIES
    scheduled: list[float] = field(default_factory=list)

    @property
    def request(self) -> SimpleNamespace:
        return SimpleNamespace(retries=self.retries)

    def retry(self, exc: BaseException, countdown: float) -> Retry:
        self.scheduled.append(countdown)
        return Retry(str(exc))


def test_backoff_doubles_up_to_five_seconds() -> None:
    assert [backoff_s(n) for n in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_transient_errors_retry_until_spent_then_give_up() -> None:
    gave_up: list[str] = []

    def work() -> None:
        raise RedisUnavailableError("redis down")

    task = FakeTask()
    for attempt in range(MAX_RETRIES):
        task.retries = attempt
        with pytest.raises(Retry):
            run_with_retries(task, work, what="upload x", give_up=gave_up.append)
    assert task.scheduled == [backoff_s(n) for n in range(MAX_RETRIES)]
    assert gave_up == []
    task.retries = MAX_RETRIES
    run_with_retries(task, work, what="upload x", give_up=gave_up.append)
    assert len(gave_up) == 1 and "retries spent" in gave_up[0] and "redis down" in gave_up[0]


def test_other_errors_give_up_at_once() -> None:
    gave_up: list[str] = []

    def work() -> None:
        raise ImageError("corrupt")

    task = FakeTask()
    run_with_retries(task, work, what="upload x", give_up=gave_up.append)
    assert task.scheduled == [] and gave_up == ["failed: corrupt"]


def test_success_does_nothing_else() -> None:
    calls: list[int] = []
    gave_up: list[str] = []
    run_with_retries(FakeTask(), lambda: calls.append(1), what="x", give_up=gave_up.append)
    assert calls == [1] and gave_up == []
