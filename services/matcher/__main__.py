"""``python -m services.matcher [--check-config] [--ready-file PATH] [celery worker args]``.

Starts the Celery worker in this process on queue ``match``: pool ``solo``
by default, or ``threads`` with ``FACEGATE_WORKER_CONCURRENCY`` > 1 (the
gallery is shared by the threads). Extra arguments go to ``celery worker``.
``--check-config`` prints the validated settings (secrets masked) and exits
0, or prints the error and exits 1.
"""

from __future__ import annotations

from facegate.adapters.celery_app import MATCH_QUEUE
from facegate.adapters.celery_worker import WorkerSpec, celery_worker_argv, run_worker
from services.matcher.app import MatcherApp, build
from services.matcher.settings import MatcherSettings
from services.matcher.tasks import register


def worker_argv(settings: MatcherSettings, extra: list[str]) -> list[str]:
    concurrency = settings.worker_concurrency or 1
    pool = "solo" if concurrency <= 1 else "threads"
    return celery_worker_argv(MATCH_QUEUE, "matcher", pool, concurrency, settings.log_level, extra)


def _ready(app: MatcherApp) -> str:
    return f"ready on queue {MATCH_QUEUE}"


MATCHER = WorkerSpec(
    name="matcher",
    settings_cls=MatcherSettings,
    build=build,
    register=register,
    worker_argv=worker_argv,
    ready_message=_ready,
    description=__doc__,
    metrics_port=lambda settings: settings.matcher_metrics_port,
    on_ready=lambda app: app.sweeper.start(),
)


def main(argv: list[str] | None = None) -> int:
    return run_worker(MATCHER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
