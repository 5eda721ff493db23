"""The whole pipeline as real processes: Redis, SeaweedFS, ingest, one
encoder (real model) and one matcher worker, started by
:mod:`facegate.tools.devstack` on their own ports (``FACEGATE_E2E_BASE_PORT``,
default 26400..26406; never 6379 nor the development stack's ports) and
stopped at the end of the session. Missing ``redis-server``/``weed`` skips
locally and FAILS in CI (``CI=true``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from e2e_site import Site

from facegate.adapters.celery_app import make_celery, send_encode
from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.clients.admin import Admin
from facegate.clients.camera import CameraClient
from facegate.runtime.settings import CommonSettings
from facegate.tools.devstack import Stack, StackConfig, StackError, find_redis_server, find_weed
from facegate.tools.settings import ToolSettings

TOOLS = ToolSettings.from_env()
BASE_PORT = TOOLS.e2e_base_port


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for finder in (find_redis_server, find_weed):
        try:
            finder()
        except StackError as exc:
            if _in_ci():
                pytest.fail(f"e2e tests need {exc} (CI=true)")
            pytest.skip(f"e2e tests need {exc}")
    state: Path = tmp_path_factory.mktemp("e2e-stack")
    stack = Stack(
        StackConfig.for_tests(
            BASE_PORT,
            state_dir=state,
            ready_timeout_s=TOOLS.test_ready_timeout_s or 300.0,
            extra_env={
                "FACEGATE_LOG_LEVEL": "INFO",
                "FACEGATE_EVENT_TTL_S": "60",
                # the reconciler looks at the bucket every second and sends
                # what no event announced within 4 s (tests/e2e/test_trust.py)
                "FACEGATE_RECONCILE_INTERVAL_S": "1",
                "FACEGATE_RECONCILE_GRACE_S": "4",
            },
        )
    )
    try:
        stack.up()
    except StackError as exc:
        stack.down()
        pytest.fail(f"could not start the pipeline: {exc}")
    env = stack.env()
    settings = CommonSettings.from_env(env)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30.0)
    store = RedisStore(client)
    objects = MinioObjectStore(settings)
    celery = make_celery(settings, "facegate-e2e")
    admin = Admin(settings, store, objects, lambda r: send_encode(celery, r))
    try:
        yield Site(
            stack,
            env,
            settings,
            store,
            client,
            objects,
            CameraClient(stack.config.ingest_url, env["FACEGATE_CAMERA_TOKEN"]),
            admin,
            celery,
        )
    finally:
        client.close()
        stack.down()
