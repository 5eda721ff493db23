"""The metrics module and the workers' sidecar app, without any server:
stage spans from stamps, the labels kept low-cardinality, the queue-depth
collector over a fake broker, the batcher's hook, and the WSGI routes."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from facegate.adapters import metrics
from facegate.adapters.health_http import health_app, run_checks
from facegate.core.messages import Decision, DoorEvent, Reason
from services.encoder.batcher import Batcher

pytestmark = pytest.mark.unit

FULL = {
    "uploaded": 100.0,
    "ingested": 100.01,
    "encode_start": 100.03,
    "fetched": 100.04,
    "decoded": 100.05,
    "engine_start": 100.08,
    "detected": 100.18,
    "embedded": 100.20,
    "match_start": 100.22,
    "matched": 100.225,
    "published": 100.226,
}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def event(door: str = "front", reason: Reason = Reason.GRANTED, **stamps: float) -> DoorEvent:
    decision = Decision.OPEN if reason is Reason.GRANTED else Decision.DENY
    return DoorEvent(
        id="e" * 32, upload_id="a" * 32, door=door, camera="cam1", decision=decision,
        reason=reason, person="alice" if decision is Decision.OPEN else None, distance=0.3,
        issued_at=100.226, expires_at=130.0, stamps=dict(stamps or FULL),
    )


def test_every_stage_is_measured_between_its_two_stamps() -> None:
    spans = metrics.stage_durations(FULL)
    assert list(spans) == [stage for stage, _, _ in metrics.STAGES]
    assert spans["ingest"] == pytest.approx(0.01)
    assert spans["engine_wait"] == pytest.approx(0.03)
    assert spans["detect"] == pytest.approx(0.10)
    assert spans["match_queue"] == pytest.approx(0.02)
    assert sum(spans.values()) == pytest.approx(FULL["published"] - FULL["uploaded"])


def test_an_unclaimed_upload_waits_for_the_matcher_from_ingest() -> None:
    stamps = {"uploaded": 1.0, "ingested": 1.5, "match_start": 2.0, "matched": 2.1,
              "published": 2.2}
    spans = metrics.stage_durations(stamps)
    assert spans["match_queue"] == pytest.approx(0.5)
    assert "fetch" not in spans and "detect" not in spans


def test_spans_across_disagreeing_clocks_are_left_out() -> None:
    spans = metrics.stage_durations({**FULL, "match_start": FULL["embedded"] - 1.0})
    assert "match_queue" not in spans
    assert "match" in spans  # the next stage is still measured


def test_a_decision_moves_its_counter_latency_and_stages() -> None:
    labels = {"door": "m-front", "decision": "OPEN", "reason": "granted"}
    before = value("facegate_decisions_total", **labels)
    count = value("facegate_upload_to_decision_seconds_count")
    total = value("facegate_upload_to_decision_seconds_sum")
    detect = value("facegate_stage_seconds_count", stage="detect")
    metrics.observe_decision(event("m-front"))
    assert value("facegate_decisions_total", **labels) == before + 1
    assert value("facegate_upload_to_decision_seconds_count") == count + 1
    assert value("facegate_upload_to_decision_seconds_sum") == pytest.approx(total + 0.226)
    assert value("facegate_stage_seconds_count", stage="detect") == detect + 1


def test_made_up_doors_share_one_label() -> None:
    """An unknown_door DENY's door comes from an object key an S3 writer
    chose: it must not create a series per made-up name."""
    before = value("facegate_decisions_total", door="unknown", decision="DENY",
                   reason="unknown_door")
    for n in range(5):
        metrics.observe_decision(event(f"made-up-{n}", Reason.UNKNOWN_DOOR))
    after = value("facegate_decisions_total", door="unknown", decision="DENY",
                  reason="unknown_door")
    assert after == before + 5
    names = {s.labels.get("door") for f in REGISTRY.collect() for s in f.samples}
    assert not any(str(n).startswith("made-up-") for n in names)


def test_no_metric_carries_a_person_or_an_upload_id() -> None:
    metrics.observe_decision(event("m-front"))
    labels = {key for f in REGISTRY.collect() if f.name.startswith("facegate_")
              for s in f.samples for key in s.labels}
    assert labels <= {"door", "decision", "reason", "stage", "queue", "backend", "task",
                      "source", "outcome", "result", "le"}


def test_an_encoded_upload_counts_its_faces_an_early_deny_does_not() -> None:
    faces = value("facegate_faces_per_upload_count")
    metrics.observe_encoded(2, None)
    metrics.observe_encoded(0, Reason.BAD_IMAGE)
    assert value("facegate_faces_per_upload_count") == faces + 1
    assert value("facegate_faces_per_upload_bucket", le="1.0") < value(
        "facegate_faces_per_upload_bucket", le="2.0")


class FakePipeline:
    def __init__(self, lengths: list[int] | None) -> None:
        self.lengths = lengths
        self.calls: list[tuple[str, str]] = []

    def llen(self, key: str) -> None:
        self.calls.append(("llen", key))

    def hlen(self, key: str) -> None:
        self.calls.append(("hlen", key))

    def execute(self) -> list[int]:
        if self.lengths is None:
            raise redis.ConnectionError("broker down")
        return self.lengths


class FakeBroker:
    def __init__(self, lengths: list[int] | None) -> None:
        self.pipe = FakePipeline(lengths)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return self.pipe


def test_queue_depth_sums_kombus_priority_lists() -> None:
    broker = FakeBroker([3, 0, 1, 0, 7, 0, 0, 2, 4])
    collector = metrics.QueueDepthCollector(broker, ("encode", "match"))  # type: ignore[arg-type]
    families = {f.name: f for f in collector.collect()}
    depth = {s.labels["queue"]: s.value for s in families["facegate_queue_messages"].samples}
    assert depth == {"encode": 4.0, "match": 9.0}
    assert families["facegate_queue_unacked_messages"].samples[0].value == 4.0
    keys = [key for op, key in broker.pipe.calls if op == "llen"]
    assert keys[:4] == ["encode", "encode\x06\x163", "encode\x06\x166", "encode\x06\x169"]
    assert ("hlen", "unacked") in broker.pipe.calls


def test_queue_depth_without_a_broker_leaves_the_series_out_and_counts_it() -> None:
    errors = value("facegate_backend_errors_total", backend="broker")
    collector = metrics.QueueDepthCollector(FakeBroker(None), ("encode",))  # type: ignore[arg-type]
    assert list(collector.collect()) == []
    assert value("facegate_backend_errors_total", backend="broker") == errors + 1


def test_the_batcher_reports_each_batch_it_forms() -> None:
    seen: list[tuple[int, float]] = []
    gate = threading.Event()

    def process(items: Any) -> list[int]:
        gate.wait(5)
        return list(items)

    batcher: Batcher[int, int] = Batcher(
        process, max_size=3, max_wait_s=0.05, on_batch=lambda n, w: seen.append((n, w))
    )
    futures = [batcher.submit(i) for i in range(4)]
    gate.set()
    assert [f.result(timeout=5) for f in futures] == [0, 1, 2, 3]
    batcher.close()
    assert [n for n, _ in seen] in ([3, 1], [1, 3], [2, 2], [1, 2, 1], [1, 1, 2], [2, 1, 1])
    assert sum(n for n, _ in seen) == 4
    assert all(0.0 <= w < 1.0 for _, w in seen)


# --- the sidecar's routes ---------------------------------------------------------------


def call(app: Callable[..., Any], path: str, method: str = "GET") -> tuple[int, str, bytes]:
    got: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(), "SERVER_NAME": "x", "SERVER_PORT": "1",
               "wsgi.url_scheme": "http", "HTTP_ACCEPT": "text/plain"}
    body = b"".join(app(environ, start))
    return int(got["status"].split()[0]), got["headers"].get("Content-Type", ""), body


def test_liveness_answers_whatever_the_checks_say() -> None:
    app = health_app({"redis": lambda: False})
    status, _, body = call(app, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_readiness_names_the_failed_check() -> None:
    up = threading.Event()

    def broken() -> bool:
        raise redis.ConnectionError("Connection refused")

    app = health_app({"model": up.is_set, "redis": lambda: True, "broker": broken})
    status, kind, body = call(app, "/readyz")
    answer = json.loads(body)
    assert (status, kind, answer["status"]) == (503, "application/json", "not_ready")
    assert answer["checks"]["model"] == "failed"
    assert answer["checks"]["redis"] == "ok"
    assert answer["checks"]["broker"].startswith("failed: ConnectionError: Connection refused")
    up.set()
    app = health_app({"model": up.is_set, "redis": lambda: True})
    status, _, body = call(app, "/readyz")
    assert (status, json.loads(body)["status"]) == (200, "ready")


def test_metrics_route_serves_the_prometheus_text() -> None:
    metrics.observe_batch(5, 0.01)
    status, kind, body = call(health_app({}), "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"facegate_encoder_batch_size", "facegate_decisions"} <= names


def test_other_routes_and_methods_are_refused() -> None:
    assert call(health_app({}), "/nope")[0] == 404
    assert call(health_app({}), "/readyz", "POST")[0] == 405


def test_run_checks_treats_none_as_passed() -> None:
    assert run_checks({"a": lambda: None, "b": lambda: 1}) == (True, {"a": "ok", "b": "ok"})


# --- the local stack's ports and URLs -------------------------------------------------


def test_the_stack_gives_each_worker_process_its_own_metrics_port(tmp_path: Any) -> None:
    from facegate.tools.devstack import StackConfig

    cfg = StackConfig.default(tmp_path, encoders=2, matchers=1)
    assert cfg.metrics_urls() == {
        "ingest": "http://127.0.0.1:18700/metrics",
        "encoder-1": "http://127.0.0.1:18711/metrics",
        "encoder-2": "http://127.0.0.1:18712/metrics",
        "matcher-1": "http://127.0.0.1:18721/metrics",
    }
    assert cfg.process_env("encoder-2") == {"FACEGATE_ENCODER_METRICS_PORT": "18712"}
    assert cfg.process_env("matcher-1") == {"FACEGATE_MATCHER_METRICS_PORT": "18721"}
    assert cfg.process_env("ingest") == {}
    tests = StackConfig.for_tests(28600, tmp_path)
    assert tests.sidecar_ports() == {"encoder-1": 28610, "matcher-1": 28620}


def test_colliding_metrics_ports_are_refused(tmp_path: Any) -> None:
    from facegate.core.errors import ConfigError
    from facegate.tools.devstack import StackConfig

    with pytest.raises(ConfigError, match="metrics ports collide"):
        StackConfig.default(tmp_path, encoders=11)  # encoder-11 would take matcher-1's port
    with pytest.raises(ConfigError, match="metrics ports collide"):
        StackConfig.default(tmp_path, encoder_metrics_port=18700)  # ingest's


MULTIPROCESS = """
import io, multiprocessing, sys
from facegate.adapters import metrics
from facegate.adapters.health_http import health_app

class Pipe:
    def llen(self, key): pass
    def hlen(self, key): pass
    def execute(self): return [2, 0, 0, 0, 0]

class Broker:
    def pipeline(self, transaction=True): return Pipe()

def child(n):
    metrics.observe_batch(n, 0.01)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=child, args=(n,)) for n in (3, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    registry = metrics.serving_registry()  # as the sidecar builds it
    registry.register(metrics.QueueDepthCollector(Broker(), ("encode",)))
    environ = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(), "HTTP_ACCEPT": "text/plain"}
    body = b"".join(health_app({}, registry)(environ, lambda status, headers: None))
    sys.stdout.write(body.decode())
"""


def test_forked_processes_are_aggregated_with_a_multiprocess_dir(tmp_path: Any) -> None:
    """A worker run with a forking pool and PROMETHEUS_MULTIPROC_DIR:
    what each child observed is served by the parent."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", MULTIPROCESS], env=env, cwd=root,
                         capture_output=True, text=True, check=True, timeout=60)
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(out.stdout) for s in f.samples}
    assert found[("facegate_encoder_batch_size_count", ())] == 2.0
    assert found[("facegate_encoder_batch_size_sum", ())] == 8.0
    assert found[("facegate_queue_messages", (("queue", "encode"),))] == 2.0


def test_stack_status_prints_the_metrics_urls(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from facegate.tools.cli import main

    assert main(["stack", "status", "--state-dir", str(tmp_path)]) == 1  # nothing runs
    out = capsys.readouterr().out
    for url in ("http://127.0.0.1:18700/metrics", "http://127.0.0.1:18711/metrics",
                "http://127.0.0.1:18721/metrics"):
        assert url in out
