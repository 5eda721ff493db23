"""Prometheus metrics of the pipeline: every name, label and bucket, in one place.

The services record through the small functions below (no framework here:
ingest's HTTP layer, the workers' sidecar (:mod:`facegate.adapters.
health_http`) and the console only *serve* :func:`exposition`). The metric
objects live in prometheus-client's default registry, one per process, as
prometheus-client intends; tests read them through ``/metrics``.

Names follow Prometheus conventions: base units in the name (``_seconds``),
``_total`` counters, and only low-cardinality labels: stage, queue, door,
decision, reason, backend, task, source. Never a person, an upload id or a
camera. The door label is a configured door's id, except for ``DENY
unknown_door``, whose door came from an object key anyone with S3 write
access chooses: it is counted under ``door="unknown"`` so a flood of made-up
doors cannot grow the series without bound.

Latencies come from the stamps every message carries
(:class:`~facegate.core.messages.DoorEvent.stamps`): the matcher observes
them once, when an upload's decision is recorded, so a redelivered task adds
nothing. :data:`STAGES` names each stage by the two stamps around it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from facegate.core.messages import DoorEvent, Reason

log = logging.getLogger(__name__)

NAMESPACE: Final = "facegate"

STAGES: Final[tuple[tuple[str, str, str], ...]] = (
    ("ingest", "uploaded", "ingested"),
    ("encode_queue", "ingested", "encode_start"),
    ("fetch", "encode_start", "fetched"),
    ("decode", "fetched", "decoded"),
    ("engine_wait", "decoded", "engine_start"),
    ("detect", "engine_start", "detected"),
    ("embed", "detected", "embedded"),
    ("match_queue", "embedded", "match_start"),
    ("match", "match_start", "matched"),
    ("publish", "matched", "published"),
)
"""``(stage, from stamp, to stamp)``. An upload denied before encoding
(``unclaimed``) has no encoder stamps: its wait for the matcher is then
``ingested`` -> ``match_start`` (:func:`stage_durations`)."""

LATENCY_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
STAGE_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 12, 16, 24, 32, 64, 128, 256)
FACE_BUCKETS: Final = (0, 1, 2, 3, 5, 10)
UNKNOWN_DOOR_LABEL: Final = "unknown"

UPLOAD_TO_DECISION = Histogram(
    "facegate_upload_to_decision_seconds",
    "From the object store writing an upload to its decision being published",
    buckets=LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "facegate_stage_seconds",
    "Time an upload spent in each stage of the pipeline (from its stamps)",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
DECISIONS = Counter(
    "facegate_decisions_total",
    "Uploads decided (recorded once each), by door, decision and reason",
    ["door", "decision", "reason"],
)
APPROACH_CLOSES = Counter(
    "facegate_approach_closes_total",
    "Approaches closed by their window's DENY (no frame passed), by door and reason",
    ["door", "reason"],
)
BATCH_SIZE = Histogram(
    "facegate_encoder_batch_size", "Uploads in each batch the encoder's batcher formed",
    buckets=BATCH_BUCKETS,
)
BATCH_WAIT = Histogram(
    "facegate_encoder_batch_wait_seconds",
    "How long the batcher collected a batch after its first upload arrived",
    buckets=STAGE_BUCKETS,
)
ENGINE_SECONDS = Histogram(
    "facegate_encoder_engine_seconds",
    "One face-engine call (detection and embedding over the batches it gathered)",
    buckets=STAGE_BUCKETS,
)
FACES = Histogram(
    "facegate_faces_per_upload", "Faces the encoder found in each upload it encoded",
    buckets=FACE_BUCKETS,
)
ENCODED = Counter(
    "facegate_encoder_uploads_total",
    "Uploads the encoder answered, by the reason of an early DENY (ok: encoded)",
    ["reason"],
)
MODEL_BUILD = Gauge(
    "facegate_model_build_seconds", "How long this encoder took to build its face model",
    multiprocess_mode="max",
)
MODEL_LOADED = Gauge(
    "facegate_model_loaded", "1 once this encoder's face model is built",
    multiprocess_mode="livemax",
)
GALLERY_PEOPLE = Gauge(
    "facegate_gallery_people", "People in the matcher's gallery (last load)",
    multiprocess_mode="livemax",
)
GALLERY_TEMPLATES = Gauge(
    "facegate_gallery_templates", "Templates in the matcher's gallery (last load)",
    multiprocess_mode="livemax",
)
GALLERY_RELOAD = Histogram(
    "facegate_gallery_reload_seconds",
    "Loading the gallery from Redis after its version moved",
    buckets=STAGE_BUCKETS,
)
RECONCILER_PASSES = Counter(
    "facegate_reconciler_passes_total",
    "Reconciler passes: ran, not_holder (another ingest holds the lease), failed",
    ["result"],
)
RECONCILER_SENT = Counter(
    "facegate_reconciler_sent_total", "Uploads the reconciler sent on (their event was lost)"
)
INGESTED = Counter(
    "facegate_ingest_uploads_total",
    "Uploads ingest sent on, by how it heard of them and where they went",
    ["source", "outcome"],
)
RETRIES = Counter(
    "facegate_task_retries_total", "Task retries after a transient error", ["task"]
)
GIVE_UPS = Counter(
    "facegate_task_give_ups_total",
    "Tasks that gave up (retries spent or an unexpected error): answered internal_error",
    ["task"],
)
BACKEND_ERRORS = Counter(
    "facegate_backend_errors_total",
    "Errors talking to a backend: redis, s3 (object store), broker",
    ["backend"],
)

QUEUE_MESSAGES: Final = "facegate_queue_messages"
UNACKED_MESSAGES: Final = "facegate_queue_unacked_messages"
KOMBU_PRIORITY_SEP: Final = "\x06\x16"
KOMBU_PRIORITY_STEPS: Final = (0, 3, 6, 9)
"""kombu's Redis transport keeps a queue in one list per priority step:
``<queue>`` for step 0, ``<queue>\\x06\\x16<step>`` for the others."""


def stage_durations(stamps: Mapping[str, float]) -> dict[str, float]:
    """Each :data:`STAGES` stage whose two stamps are present, in seconds
    (a negative span, from clocks of two hosts that disagree, is left out)."""
    out: dict[str, float] = {}
    for stage, start, end in STAGES:
        if stage == "match_queue" and "embedded" not in stamps:
            start = "ingested"
        if start in stamps and end in stamps:
            span = stamps[end] - stamps[start]
            if span >= 0:
                out[stage] = span
    return out


def door_label(door: str, reason: Reason) -> str:
    """The door's label: its id, or ``unknown`` for a door nobody configured."""
    return UNKNOWN_DOOR_LABEL if reason is Reason.UNKNOWN_DOOR else door


def observe_decision(event: DoorEvent) -> None:
    """An upload's decision was recorded (once per upload)."""
    DECISIONS.labels(door_label(event.door, event.reason), event.decision.value,
                     event.reason.value).inc()
    stamps = event.stamps
    if "uploaded" in stamps and "published" in stamps:
        UPLOAD_TO_DECISION.observe(max(0.0, stamps["published"] - stamps["uploaded"]))
    for stage, seconds in stage_durations(stamps).items():
        STAGE_SECONDS.labels(stage).observe(seconds)


def observe_close(event: DoorEvent) -> None:
    """An approach got its closing DENY."""
    APPROACH_CLOSES.labels(door_label(event.door, event.reason), event.reason.value).inc()


def observe_batch(size: int, wait_s: float) -> None:
    BATCH_SIZE.observe(size)
    BATCH_WAIT.observe(max(0.0, wait_s))


def observe_encoded(faces: int, error: Reason | None) -> None:
    """The encoder answered one upload (``faces`` only counts when encoded)."""
    ENCODED.labels("ok" if error is None else error.value).inc()
    if error is None:
        FACES.observe(faces)


def observe_model_build(seconds: float) -> None:
    MODEL_BUILD.set(seconds)
    MODEL_LOADED.set(1)


def observe_gallery(people: int, templates: int, seconds: float) -> None:
    """A full (re)load of a model's gallery: its size and how long it took."""
    gallery_size(people, templates)
    GALLERY_RELOAD.observe(seconds)


def gallery_size(people: int, templates: int) -> None:
    """The gallery's size after an incremental change (no reload)."""
    GALLERY_PEOPLE.set(people)
    GALLERY_TEMPLATES.set(templates)


def backend_error(backend: str) -> None:
    """One failed call to ``redis``, ``s3`` or ``broker``."""
    BACKEND_ERRORS.labels(backend).inc()


def queue_keys(queue: str) -> list[str]:
    """The broker's Redis lists that hold ``queue``'s waiting messages."""
    return [queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEP}{step}"
            for step in KOMBU_PRIORITY_STEPS]


class QueueDepthCollector(Collector):
    """Reads each Celery queue's length from the Redis broker at scrape time
    (``facegate_queue_messages{queue}``) and the messages delivered but not
    yet acknowledged (``facegate_queue_unacked_messages``). When the broker
    does not answer, the scrape goes on without these series (and
    ``facegate_backend_errors_total{backend="broker"}`` counts it)."""

    def __init__(self, client: redis.Redis, queues: Iterable[str]) -> None:
        self.client = client
        self.queues = tuple(queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            pipe = self.client.pipeline(transaction=False)
            for queue in self.queues:
                for key in queue_keys(queue):
                    pipe.llen(key)
            pipe.hlen("unacked")
            lengths = [int(n) for n in pipe.execute()]
        except redis.RedisError as exc:
            log.warning("queue depth unavailable: %s", exc)
            backend_error("broker")
            return
        depth = GaugeMetricFamily(QUEUE_MESSAGES, "Messages waiting in each Celery queue",
                                  labels=["queue"])
        steps = len(KOMBU_PRIORITY_STEPS)
        for i, queue in enumerate(self.queues):
            depth.add_metric([queue], float(sum(lengths[i * steps:(i + 1) * steps])))
        yield depth
        yield GaugeMetricFamily(UNACKED_MESSAGES,
                                "Messages delivered to a worker and not yet acknowledged",
                                value=float(lengths[-1]))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # collected at scrape time only: nothing to check at register


def serving_registry() -> CollectorRegistry:
    """What ``/metrics`` serves: this process's registry, or, when
    ``PROMETHEUS_MULTIPROC_DIR`` is set (a worker run with a forking
    pool), every process's values aggregated from that folder."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def exposition(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """``(body, content type)`` of a ``/metrics`` answer."""
    return generate_latest(registry or serving_registry()), CONTENT_TYPE_LATEST


__all__ = [
    "LATENCY_BUCKETS",
    "STAGES",
    "QueueDepthCollector",
    "backend_error",
    "door_label",
    "exposition",
    "gallery_size",
    "observe_batch",
    "observe_close",
    "observe_decision",
    "observe_encoded",
    "observe_gallery",
    "observe_model_build",
    "queue_keys",
    "serving_registry",
    "stage_durations",
]
