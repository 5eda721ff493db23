"""The lock side against a real Redis that is killed and started again.

Events are recorded the way the matcher records them (``RedisStore.record_decision``:
the Lua script, the door stream, pub/sub, Ed25519 with the stream id under
the signature); the lock is :class:`~facegate.clients.lock.DoorListener`
in this process, or ``facegate subscribe`` as its own process. What is
proven:

* no gap at subscribe: an event recorded right after ``subscribe()``
  returns is delivered, live, every time (200 rounds);
* Redis ``kill -9`` and restart under a listening lock: it backs off,
  subscribes again and catches up from the last id it accepted; events
  recorded before it reconnects, and after, are each accepted once;
* a lock process ``kill -9``-ed mid-stream and started again: nothing
  accepted twice, the events decided while it was dead caught up (at most
  the one event in flight at the kill is spent without an action: the
  documented fail-closed window), and ``facegate subscribe`` keeps running
  across a Redis restart.

Redis here is its own process (``FACEGATE_TEST_BASE_PORT + 20``), not the
session's, so killing it disturbs no other test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from facegate.adapters.redis_store import RedisStore
from facegate.clients.lock import Backoff, DoorListener, Received
from facegate.clients.lock_state import LockState
from facegate.core import keys
from facegate.core.errors import RedisUnavailableError
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner
from facegate.tools.devstack import Stack, StackConfig, StackError, find_redis_server
from facegate.tools.settings import ToolSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PORT_BASE = ToolSettings.from_env().test_base_port + 20
SIGNER = DoorSigner.derive("lock-integration-secret-0123456789", "gate")
PUBLIC = SIGNER.public_key


@pytest.fixture(scope="module")
def redis_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        find_redis_server()
    except StackError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    stack = Stack(StackConfig.for_tests(PORT_BASE, state_dir=tmp_path_factory.mktemp("redis"),
                                        services=("redis",), ready_timeout_s=30.0))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def store(redis_stack: Stack) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_stack.config.redis_url)
    store.client.flushdb()
    yield store
    store.close()


def kill_redis(stack: Stack) -> None:
    pid = stack.kill("redis")
    assert not Path(f"/proc/{pid}").exists()


def decide(store: RedisStore, n: int = 0) -> DoorEvent:
    """Record one decision as the matcher does; the event as recorded."""
    now = time.time()
    event = DoorEvent(
        id=keys.new_upload_id(), upload_id=keys.new_upload_id(), door="gate", camera="cam",
        decision=Decision.DENY, reason=Reason.UNKNOWN_PERSON, issued_at=now,
        expires_at=now + 60.0, stamps={"n": float(n)},
    )
    for _ in range(100):  # Redis may still be starting
        try:
            recorded = store.record_decision(event, SIGNER.sign)
            assert recorded is not None
            return recorded.event
        except RedisUnavailableError:  # Redis is still starting
            time.sleep(0.05)
    raise AssertionError("could not record a decision")


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class Collector:
    """A listener's events() in a thread, gathered."""

    def __init__(self, listener: DoorListener, timeout_s: float) -> None:
        self.listener = listener
        self.items: list[Received] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(timeout_s,), daemon=True)
        self.thread.start()

    def _run(self, timeout_s: float) -> None:
        try:
            for item in self.listener.events(timeout_s=timeout_s, poll_s=0.05):
                self.items.append(item)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def accepted(self) -> list[DoorEvent]:
        return [i.event for i in list(self.items) if i.event is not None]


# --------------------------------------------------------------------------- no gap


def test_an_event_recorded_right_after_subscribe_is_delivered(
    redis_stack: Stack, store: RedisStore
) -> None:
    client = redis.Redis.from_url(redis_stack.config.redis_url, socket_timeout=5.0)
    for n in range(200):
        listener = DoorListener(client, "gate", PUBLIC.hex)
        listener.subscribe()
        sent = decide(store, n)  # the moment subscribe() returns
        got = next(iter(listener.events(timeout_s=5.0, poll_s=0.05)), None)
        listener.close()
        assert got is not None and got.event is not None, f"round {n}: nothing delivered"
        assert (got.event.id, got.source) == (sent.id, "live"), f"round {n}"
    client.close()


# --------------------------------------------------------------------------- Redis restarts


def test_listener_survives_a_redis_restart_and_catches_up_exactly_once(
    redis_stack: Stack, store: RedisStore, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_stack.config.redis_url, socket_timeout=5.0)
    state = LockState.open(tmp_path, "gate")
    listener = DoorListener(client, "gate", PUBLIC, state=state,
                            backoff=Backoff(first_s=1.0, max_s=1.0))
    listener.subscribe()
    lock = Collector(listener, timeout_s=20.0)
    before = [decide(store, n) for n in range(5)]
    wait_for(lambda: len(lock.accepted()) == 5, 10.0, "the first events")
    assert state.last_id == before[-1].stream_id

    kill_redis(redis_stack)
    redis_stack.start("redis")
    # recorded after the restart, before the lock is back (its backoff is >= 0.5 s)
    while_away = [decide(store, 10 + n) for n in range(3)]
    wait_for(lambda: listener.subscriptions == 2, 15.0, "the lock to subscribe again")
    after = [decide(store, 20 + n) for n in range(3)]
    wait_for(lambda: len(lock.accepted()) == 11, 15.0, "every event")
    time.sleep(0.5)  # anything doubled would arrive now
    listener.stop()
    lock.thread.join(5.0)
    listener.close()
    assert lock.error is None and not lock.thread.is_alive()
    accepted = [e.id for e in lock.accepted()]
    assert accepted == [e.id for e in before + while_away + after]  # each once, in order
    sources = {i.event.id: i.source for i in lock.items if i.event is not None}
    assert {sources[e.id] for e in while_away} == {"stream"}  # caught up, not live
    assert [i.rejected for i in lock.items if i.event is None] == []
    assert state.last_id == after[-1].stream_id
    client.close()
    state.close()


# --------------------------------------------------------------------------- lock process


def start_lock(redis_url: str, state_dir: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "facegate.tools.cli", "subscribe", "--door", "gate",
            "--key", PUBLIC.hex, "--redis-url", redis_url, "--state-dir", str(state_dir),
            "--accepted-log", str(state_dir / "accepted.jsonl"), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    err = (state_dir / "lock.err").open("ab")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    runs = sum(1 for _ in state_dir.glob("run-*"))
    (state_dir / f"run-{runs}").touch()
    wait_for(lambda: (state_dir / "lock.err").read_text().count("subscribed to door") > runs,
             30.0, "the lock process to subscribe")
    return proc


def accepted_log(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "accepted.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_lock_process_killed_mid_stream_never_acts_twice(
    redis_stack: Stack, store: RedisStore, tmp_path: Path
) -> None:
    lock = start_lock(redis_stack.config.redis_url, tmp_path)
    sent: list[DoorEvent] = []
    stop = threading.Event()

    def camera() -> None:
        n = 0
        while not stop.is_set():
            sent.append(decide(store, n))
            n += 1
            time.sleep(0.03)

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        time.sleep(1.5)
        os.kill(lock.pid, signal.SIGKILL)  # mid-stream
        lock.wait(10.0)
        dead_at = len(sent)
        time.sleep(1.5)  # decisions keep coming while no lock listens
        assert len(sent) > dead_at
        lock = start_lock(redis_stack.config.redis_url, tmp_path)
        time.sleep(1.5)
    finally:
        stop.set()
        feeder.join(5.0)
    try:
        wanted = {e.id for e in sent}
        wait_for(lambda: len(accepted_log(tmp_path)) >= len(wanted) - 1, 30.0,
                 "the restarted lock to catch up")
        time.sleep(0.5)
        logged = [entry["id"] for entry in accepted_log(tmp_path)]
        assert len(logged) == len(set(logged)), "an event was acted on twice"
        missing = wanted - set(logged)
        # at most the event in flight when the lock died: recorded, never acted on
        state = json.loads((tmp_path / "gate.json").read_text())
        assert len(missing) <= 1 and missing <= set(state["accepted"])
        assert {e["pid"] for e in accepted_log(tmp_path)} >= {lock.pid}
        caught_up = [e for e in accepted_log(tmp_path) if e["source"] == "stream"]
        assert caught_up, "nothing was caught up from the stream after the restart"
    finally:
        lock.terminate()
        lock.wait(10.0)


def test_facegate_subscribe_survives_a_redis_restart(
    redis_stack: Stack, store: RedisStore, tmp_path: Path
) -> None:
    lock = start_lock(redis_stack.config.redis_url, tmp_path)
    try:
        first = decide(store, 1)
        wait_for(lambda: len(accepted_log(tmp_path)) == 1, 10.0, "the first event")
        kill_redis(redis_stack)
        time.sleep(1.0)
        assert lock.poll() is None, "the lock exited when Redis went away"
        redis_stack.start("redis")
        second = decide(store, 2)
        wait_for(lambda: len(accepted_log(tmp_path)) == 2, 20.0, "the event after the restart")
        assert [e["id"] for e in accepted_log(tmp_path)] == [first.id, second.id]
        assert lock.poll() is None
    finally:
        lock.terminate()
        lock.wait(10.0)


# --------------------------------------------------------------------------- production ACL


def compose_lock_rules() -> list[str]:
    """The ``locks`` user's ACL rules as docker-compose.yml gives them."""
    import shlex

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    doc = yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=Loader)
    command = " ".join(doc["services"]["redis"]["command"])
    rules = command.split('--user locks on ">$$LOCK_REDIS_PASSWORD"', 1)[1].split(" --", 1)[0]
    return shlex.split(rules)


def test_a_lock_needs_only_the_compose_locks_user(
    redis_stack: Stack, store: RedisStore, tmp_path: Path
) -> None:
    """The lock runs as the production ``locks`` user (subscribe, XRANGE,
    XREVRANGE, PING): subscribe, catch-up and live delivery all work, and the
    same user cannot record or publish an event."""
    admin = store.client
    rules = compose_lock_rules()
    admin.execute_command("ACL", "SETUSER", "locks", "reset", "on", ">lock-pass-0123456789",
                          *rules)
    try:
        decide(store, 0)  # before the lock ever ran: not for it
        client = redis.Redis(host="127.0.0.1", port=PORT_BASE, username="locks",
                             password="lock-pass-0123456789", socket_timeout=5.0)

        def run_lock(record: int | None) -> list[tuple[str | None, str]]:
            with LockState.open(tmp_path, "gate") as state:
                listener = DoorListener(client, "gate", PUBLIC, state=state)
                listener.subscribe()  # first start: XREVRANGE for the end, then SUBSCRIBE
                if record is not None:
                    decide(store, record)
                got = [(i.event.id if i.event else i.rejected, i.source)
                       for i in listener.events(timeout_s=1.0, poll_s=0.05)]
                listener.close()
            return got

        first = run_lock(1)
        missed = decide(store, 2)  # while the lock is down: XRANGE brings it
        second = run_lock(None)
        assert [source for _, source in first] == ["live"] and second == [(missed.id, "stream")]
        for command in (("PUBLISH", keys.door_channel("gate"), "x"),
                        ("XADD", keys.door_stream("gate"), "*", "event", "x"),
                        ("XRANGE", keys.AUDIT_STREAM, "-", "+")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        client.close()
    finally:
        admin.execute_command("ACL", "DELUSER", "locks")


# --------------------------------------------------------------------------- key commands


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    return subprocess.run([sys.executable, "-m", "facegate.tools.cli", *args], cwd=ROOT,
                          env={**base, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


def test_doors_key_and_rotate_key(redis_stack: Stack, store: RedisStore) -> None:
    env = redis_stack.env()
    secret = env["FACEGATE_SIGNING_SECRET"]
    shown = cli(env, "doors", "key", "gate", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    current = DoorSigner.derive(secret, "gate", 1).public_key
    assert doc == {"door": "gate", "version": 1, "kid": current.kid, "alg": "Ed25519",
                   "public_key": current.hex}
    plain = cli(env, "doors", "key", "gate")
    assert plain.stdout.strip() == current.hex and "key version 1" in plain.stderr
    upcoming = cli(env, "doors", "key", "gate", "--next").stdout.strip()
    rotated = cli(env, "doors", "rotate-key", "gate")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == upcoming == DoorSigner.derive(secret, "gate", 2).public_key.hex
    assert "key version 1 -> 2" in rotated.stderr
    assert store.door_key_version("gate") == 2
    assert cli(env, "doors", "key", "gate").stdout.strip() == upcoming
    assert cli(env, "doors", "key", "gate", "--version", "1").stdout.strip() == current.hex
    assert cli(env, "doors", "key", "a/b").returncode != 0
