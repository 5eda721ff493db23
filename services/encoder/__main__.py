"""``python -m services.encoder [--check-config] [--ready-file PATH] [celery worker args]``.

Builds the face engine (and the rest of the encoder app) in this process,
then starts the Celery worker on queue ``encode`` with the ``threads`` pool:
``FACEGATE_WORKER_CONCURRENCY`` threads, by default twice
``FACEGATE_BATCH_SIZE`` so one batch can fill while the previous one runs.
The ready file is written once the model is loaded and the worker consumes.
Scale out by starting more of these processes (one model each).
``--check-config`` prints the validated settings (secrets masked) and exits.
"""

from __future__ import annotations

from facegate.adapters.celery_app import ENCODE_QUEUE
from facegate.adapters.celery_worker import WorkerSpec, celery_worker_argv, run_worker
from services.encoder.app import EncoderApp, build
from services.encoder.settings import EncoderSettings
from services.encoder.tasks import register


def worker_argv(settings: EncoderSettings, extra: list[str]) -> list[str]:
    concurrency = settings.worker_concurrency or max(2, 2 * settings.batch_size)
    return celery_worker_argv(
        ENCODE_QUEUE, "encoder", "threads", concurrency, settings.log_level, extra
    )


def _ready(app: EncoderApp) -> str:
    s = app.settings
    return (
        f"ready on queue {ENCODE_QUEUE}: model {app.service.engine.model_id}, "
        f"batch {s.batch_size}, wait {s.batch_wait_ms} ms"
    )


ENCODER = WorkerSpec(
    name="encoder",
    settings_cls=EncoderSettings,
    build=build,
    register=register,
    worker_argv=worker_argv,
    ready_message=_ready,
    description=__doc__,
    metrics_port=lambda settings: settings.encoder_metrics_port,
    built_check="model",
)


def main(argv: list[str] | None = None) -> int:
    return run_worker(ENCODER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
