"""Real Redis, real SeaweedFS, real services: session fixtures for integration tests.

Everything is started here, by :mod:`facegate.tools.devstack`, on test-only ports
(``FACEGATE_TEST_BASE_PORT``, default 26300: Redis 26300, S3 26301, master
26302, volume 26303, filer 26304, weed admin 26305, ingest 26306; gRPC ports
+10000), never on the development stack's 6390/18xxx ports nor on 6379. The
state (logs, pids, data) lives in a pytest temporary directory; the whole
stack is stopped at the end of the session. When ``redis-server`` or ``weed``
is missing the tests are skipped locally and FAIL in CI (``CI=true``).

Fixture API (P1/P3 use these):

``stack`` (session)
    the :class:`~facegate.tools.devstack.Stack` with Redis and SeaweedFS running;
    ``stack.start("ingest")`` etc. start more; logs in ``stack.log_file(name)``.
``stack_env`` (session)
    the ``FACEGATE_*`` variables of the services started here (their data in
    Redis db 2, their Celery broker in db 3, generated secrets, bucket).
``redis_url`` (session)
    ``redis://127.0.0.1:<port>/0``: db 0, kept for tests that talk to Redis
    directly (no service of this session uses it). Use other dbs (4+) by
    replacing the path when a test runs its own worker.
``redis_client`` (function)
    a ``redis.Redis`` with bytes replies on ``redis_url``, db flushed before
    the test.
``s3_settings`` (session)
    :class:`~facegate.runtime.settings.CommonSettings` of the stack (endpoint,
    generated credentials, bucket ``facegate-uploads``, which exists).
``object_store`` (session)
    :class:`~facegate.adapters.objectstore.MinioObjectStore` on ``s3_settings``.
``ingest_settings`` (session)
    :class:`~facegate.runtime.settings.IngestSettings` the ingest process runs with.
``services_redis`` (function)
    bytes client on the services' data db (2); flushes dbs 2 and 3 before
    the test (claims, probes, decisions, queued Celery tasks).
``ingest_url`` (session)
    ``http://127.0.0.1:26306``: a running ``python -m services.ingest``
    (reconciler off: tests that want one run it in-process).
``doors`` (function)
    the services' data db flushed, with doors ``front``, ``side`` (verify)
    and ``lobby`` (identify) configured, as a :class:`RedisStore`.

The whole pipeline (encoder and matcher workers included) runs in
``tests/e2e`` on a stack of its own, so that the workers there never consume
the queues these tests inspect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.runtime.settings import CommonSettings
from facegate.tools.devstack import Stack, StackConfig, StackError, find_redis_server, find_weed
from facegate.tools.settings import ToolSettings
from services.ingest.settings import IngestSettings

TOOLS = ToolSettings.from_env()
BASE_PORT = TOOLS.test_base_port
SERVICES_DB = 2
BROKER_DB = 3


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    message = f"integration tests need {what}"
    if _in_ci():
        pytest.fail(message + " (CI=true: install it, see scripts/ensure-redis.sh / make install)")
    pytest.skip(message)


def with_db(url: str, db: int) -> str:
    """``url`` pointing at Redis database ``db``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for finder in (find_redis_server, find_weed):
        try:
            finder()
        except StackError as exc:
            _missing(str(exc))
    config = StackConfig.for_tests(
        BASE_PORT,
        state_dir=tmp_path_factory.mktemp("stack"),
        services=("redis", "seaweedfs"),
        redis_db=SERVICES_DB,
        broker_db=BROKER_DB,
        ready_timeout_s=TOOLS.test_ready_timeout_s or 240.0,
        extra_env={
            "FACEGATE_LOG_LEVEL": "INFO",
            "FACEGATE_PRESIGN_EXPIRY_S": "60",
            # the tests here count the tasks in the broker: they run the
            # reconciler themselves (tests/integration/test_reconciler.py)
            "FACEGATE_RECONCILE_INTERVAL_S": "0",
        },
    )
    test_stack = Stack(config)
    try:
        test_stack.up()
    except StackError as exc:
        test_stack.down()
        pytest.fail(f"could not start the test stack: {exc}")
    try:
        yield test_stack
    finally:
        test_stack.down()


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    return stack.env()


@pytest.fixture(scope="session")
def redis_url(stack: Stack) -> str:
    return with_db(stack.config.redis_url, 0)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_settings(stack_env: dict[str, str]) -> CommonSettings:
    return CommonSettings.from_env(stack_env)


@pytest.fixture(scope="session")
def object_store(s3_settings: CommonSettings) -> MinioObjectStore:
    store = MinioObjectStore(s3_settings)
    store.ensure_bucket()
    return store


@pytest.fixture(scope="session")
def ingest_settings(stack_env: dict[str, str]) -> IngestSettings:
    return IngestSettings.from_env(stack_env)


@pytest.fixture
def services_redis(stack: Stack) -> Iterator[redis.Redis]:
    broker = redis.Redis.from_url(stack.config.broker_url, socket_timeout=5.0)
    broker.flushdb()
    broker.close()
    client = redis.Redis.from_url(stack.config.redis_url, socket_timeout=5.0)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def doors(services_redis: redis.Redis) -> Iterator[RedisStore]:
    store = RedisStore(services_redis)
    for door in ("front", "side"):
        store.set_door(DoorPolicy(door, DoorMode.VERIFY, frozenset({"alice", "bob"}), 0.6))
    store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    yield store


def _start(stack: Stack, name: str) -> None:
    try:
        stack.start(name)
    except StackError as exc:
        pytest.fail(f"could not start {name}: {exc}")


@pytest.fixture(scope="session")
def ingest_url(stack: Stack) -> str:
    _start(stack, "ingest")
    return stack.config.ingest_url
