"""A real matcher worker's sidecar (``/metrics``, ``/healthz``, ``/readyz``)
against a Redis of its own that the test stops and starts again: ready goes
false while Redis is down (liveness stays true) and true again after; its
``/metrics`` counts a decision and reads the queue depth from the broker.
Also ingest's ``/metrics``.

Ports: this module's Redis on ``FACEGATE_TEST_BASE_PORT + 50``, the
matcher's sidecar on ``FACEGATE_TEST_BASE_PORT + 60`` (the session stack of
tests/integration/conftest.py keeps ``+0 .. +6``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from secrets_env import TEST_SECRETS

from facegate.adapters.celery_app import make_celery, send_match
from facegate.adapters.redis_store import RedisStore
from facegate.core.keys import new_upload_id
from facegate.core.messages import MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.tools.devstack import Stack, StackConfig, StackError, find_redis_server
from facegate.tools.settings import ToolSettings
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = ToolSettings.from_env().test_base_port
REDIS_BASE = BASE_PORT + 50
SIDECAR_PORT = BASE_PORT + 60


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def until(what: str, ok: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {timeout_s} s")
        time.sleep(0.2)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


@dataclass
class Worker:
    stack: Stack
    settings: MatcherSettings
    url: str
    log: Path


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    try:
        find_redis_server()
    except StackError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"needs {exc} (CI=true)")
        pytest.skip(f"needs {exc}")
    state = tmp_path_factory.mktemp("health")
    stack = Stack(StackConfig.for_tests(REDIS_BASE, state_dir=state, services=("redis",)))
    stack.up()
    env = {
        **os.environ,
        **TEST_SECRETS,
        "FACEGATE_ENV": "development",
        "FACEGATE_REDIS_URL": stack.config.redis_url,
        "FACEGATE_BROKER_URL": stack.config.broker_url,
        "FACEGATE_MATCHER_METRICS_PORT": str(SIDECAR_PORT),
        "FACEGATE_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    log = state / "matcher.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.matcher"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        yield Worker(stack, MatcherSettings.from_env(env), f"http://127.0.0.1:{SIDECAR_PORT}", log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stack.down()


def ready(worker: Worker) -> tuple[int, dict[str, object]]:
    status, body = get(f"{worker.url}/readyz")
    return status, (json.loads(body) if body else {})


def test_ready_once_consuming(worker: Worker) -> None:
    until("live", lambda: get(f"{worker.url}/healthz")[0] == 200)
    until("ready", lambda: ready(worker)[0] == 200, 90.0)
    status, answer = ready(worker)
    assert status == 200
    assert answer == {
        "status": "ready",
        "checks": {"built": "ok", "consuming": "ok", "redis": "ok", "broker": "ok"},
    }, worker.log.read_text()


def test_metrics_count_a_decision_and_read_the_queue_depth(worker: Worker) -> None:
    until("ready", lambda: ready(worker)[0] == 200, 90.0)
    client = redis.Redis.from_url(worker.settings.redis_url)
    broker = redis.Redis.from_url(worker.settings.broker_url)
    store = RedisStore(client)
    store.set_door(DoorPolicy("health-door", DoorMode.VERIFY, frozenset({"alice"}), 0.6))
    key = ("facegate_decisions_total",
           (("decision", "DENY"), ("door", "health-door"), ("reason", "unclaimed")))
    before = samples(get(f"{worker.url}/metrics")[1])
    now = time.time()
    upload = new_upload_id()
    celery = make_celery(worker.settings, "health-test")
    send_match(celery, MatchRequest.denied(upload, "health-door", "cam1", reason=Reason.UNCLAIMED,
                                           stamps={"uploaded": now, "ingested": now}))
    until("decided", lambda: store.get_decision(upload) is not None)
    until("counted", lambda: samples(get(f"{worker.url}/metrics")[1]).get(key, 0.0)
          == before.get(key, 0.0) + 1)
    after = samples(get(f"{worker.url}/metrics")[1])
    latency = ("facegate_upload_to_decision_seconds_count", ())
    assert after[latency] == before.get(latency, 0.0) + 1
    # no encoder consumes here: what waits on queue encode is counted
    broker.lpush("encode", b"{}", b"{}")
    try:
        depth = samples(get(f"{worker.url}/metrics")[1])
        assert depth[("facegate_queue_messages", (("queue", "encode"),))] == 2.0
        assert depth[("facegate_queue_messages", (("queue", "match"),))] == 0.0
    finally:
        broker.delete("encode")
        celery.close()
        client.close()
        broker.close()


def test_not_ready_while_redis_is_down_and_ready_again_after(worker: Worker) -> None:
    until("ready", lambda: ready(worker)[0] == 200, 90.0)
    worker.stack.stop("redis")
    try:
        status, answer = ready(worker)
        assert status == 503 and answer["status"] == "not_ready"
        checks = answer["checks"]
        assert isinstance(checks, dict)
        assert str(checks["redis"]).startswith("failed") and str(checks["broker"]).startswith(
            "failed")
        assert get(f"{worker.url}/healthz") == (200, b'{"status":"ok"}')  # alive all the same
        status, body = get(f"{worker.url}/metrics")
        assert status == 200  # the scrape goes on without the queue depth
        assert not any(name == "facegate_queue_messages" for name, _ in samples(body))
        # the failed read is counted (seen from the next scrape on)
        again = samples(get(f"{worker.url}/metrics")[1])
        assert again[("facegate_backend_errors_total", (("backend", "broker"),))] >= 1
    finally:
        worker.stack.start("redis")
    until("ready again", lambda: ready(worker)[0] == 200, 60.0)


def test_ingest_serves_metrics(ingest_url: str) -> None:
    status, body = get(f"{ingest_url}/metrics")
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"facegate_ingest_uploads", "facegate_reconciler_passes",
            "facegate_backend_errors"} <= names


def test_an_encoder_is_not_ready_until_its_model_is_built(worker: Worker) -> None:
    """The sidecar as run_worker starts it for the encoder, before the build
    (port 0: any free one): live at once, ready only once the model is built
    and Celery consumes."""
    from facegate.adapters.celery_worker import _Sidecar

    until("the module's Redis up", lambda: ready(worker)[0] == 200, 60.0)
    sidecar = _Sidecar(worker.settings, 0, "model")
    url = sidecar.server.url
    try:
        assert get(f"{url}/healthz") == (200, b'{"status":"ok"}')
        status, body = get(f"{url}/readyz")
        checks = json.loads(body)["checks"]
        assert status == 503
        assert checks == {"model": "failed", "consuming": "failed", "redis": "ok", "broker": "ok"}
        sidecar.built.set()
        assert get(f"{url}/readyz")[0] == 503  # built, not yet consuming
        sidecar.consuming.set()
        assert get(f"{url}/readyz")[0] == 200
    finally:
        sidecar.close()
    assert get(f"{url}/healthz")[0] == 0  # closed: nothing listens
