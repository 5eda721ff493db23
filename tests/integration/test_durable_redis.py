"""The local stack's Redis keeps its data: ``stack down/up`` and a kill -9.

A Redis of its own (``FACEGATE_TEST_BASE_PORT + 30``) started by
:mod:`facegate.tools.devstack` exactly as ``facegate stack up`` starts it
(append-only file, fsync every second, under the stack's state dir).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.tools.devstack import Stack, StackConfig, StackError, find_redis_server
from facegate.tools.settings import ToolSettings

pytestmark = pytest.mark.integration

BASE_PORT = ToolSettings.from_env().test_base_port + 30  # test_lock has + 20


@pytest.fixture
def redis_stack(tmp_path: Path) -> Iterator[Stack]:
    try:
        find_redis_server()
    except StackError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    stack = Stack(StackConfig.for_tests(BASE_PORT, state_dir=tmp_path, services=("redis",)))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def store_of(stack: Stack) -> RedisStore:
    return RedisStore(redis.Redis.from_url(stack.config.redis_url, socket_timeout=5.0))


def write_state(store: RedisStore, tag: str) -> str:
    """A door, a person's template, a decision with its stream and audit entries."""
    store.set_door(DoorPolicy(f"door-{tag}", DoorMode.VERIFY, frozenset({f"p-{tag}"}), 0.6))
    store.add_templates(f"p-{tag}", np.full((1, 128), 0.088, np.float32), "model-x")
    upload_id = keys.new_upload_id()
    event = DoorEvent(
        id=keys.new_upload_id(), upload_id=upload_id, door=f"door-{tag}", decision=Decision.DENY,
        reason=Reason.TIMEOUT, issued_at=time.time(), expires_at=time.time() + 30,
    )  # fmt: skip
    wire = b'{"signed": "' + tag.encode() + b'"}'  # a stand-in signer: only persistence matters
    assert store.record_decision(event, lambda _event: wire) is not None
    return upload_id


def assert_state(store: RedisStore, tag: str, upload_id: str) -> None:
    assert store.get_door(f"door-{tag}") is not None
    assert f"p-{tag}" in store.people()
    assert store.get_decision(upload_id) == b'{"signed": "' + tag.encode() + b'"}'
    assert any(tag.encode() in wire for _, wire in store.events_since(f"door-{tag}"))
    assert any(tag.encode() in wire for _, wire in store.read_log(count=100))


def test_data_survives_down_up_and_a_crash(redis_stack: Stack) -> None:
    store = store_of(redis_stack)
    first = write_state(store, "clean")
    store.close()
    assert (redis_stack.state_dir / "redis").is_dir()

    redis_stack.down()  # SIGTERM: a clean stop
    redis_stack.up()
    store = store_of(redis_stack)
    assert_state(store, "clean", first)

    second = write_state(store, "crash")
    store.close()
    time.sleep(1.5)  # appendfsync everysec: written a second ago is on disk
    assert redis_stack.kill("redis", signal.SIGKILL) is not None  # a crash: no shutdown save
    assert redis_stack.running_pid("redis") is None
    redis_stack.up()
    store = store_of(redis_stack)
    try:
        assert_state(store, "clean", first)
        assert_state(store, "crash", second)
        info = store.client.info("persistence")
        assert info["aof_enabled"] == 1
    finally:
        store.close()
