"""The demo's lock chapters (``python -m facegate.tools.demo``): a lock process
killed and started again that catches up without acting twice, what it
refuses (copies, fakes, and the audit record of an approach's frame that did
not open), and a key rotation.

The lock here is ``facegate subscribe`` as its own process, holding only the
door's public key, its state in ``<demo state>/lock`` and its accepted
events in ``<demo state>/lock/accepted.jsonl``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Upload = Callable[[str, str, str | None], str]
"""``upload(door, photo name, badge) -> upload id`` (a camera's presigned PUT)."""


class LockProcess:
    """``facegate subscribe`` for one door, run as a child process."""

    def __init__(self, door: str, public_hex: str, redis_url: str, state_dir: Path) -> None:
        self.door = door
        self.state_dir = state_dir
        self.accepted_log = state_dir / "accepted.jsonl"
        self.argv = [
            sys.executable, "-m", "facegate.tools.cli", "subscribe", "--door", door,
            "--key", public_hex, "--redis-url", redis_url, "--state-dir", str(state_dir),
            "--accepted-log", str(self.accepted_log), "--json",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0

    def start(self, timeout_s: float = 30.0) -> None:
        """Start it and wait until Redis confirmed its subscription."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.started += 1
        err = (self.state_dir / "lock.err").open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=err,
                                     stdin=subprocess.DEVNULL)
        err.close()
        deadline = time.monotonic() + timeout_s
        log = self.state_dir / "lock.err"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the lock exited: {log.read_text()[-500:]}")
            if log.read_text().count("subscribed to door") >= self.started:
                return
            time.sleep(0.05)
        raise RuntimeError("the lock did not subscribe in time")

    def kill(self) -> None:
        """``kill -9``: no goodbye, no flush."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10.0)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
            self.proc = None

    def accepted(self) -> list[dict[str, Any]]:
        if not self.accepted_log.exists():
            return []
        return [json.loads(line) for line in self.accepted_log.read_text().splitlines() if line]

    def wait_accepted(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.accepted()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.accepted()


def restart_story(store: Any, public_hex: str, redis_url: str, state_dir: Path,
                  upload: Upload) -> bool:
    """Kill -9 the lobby's lock, decide two uploads while it is down, start
    it again: it catches them up from the stream, each once."""
    lock = LockProcess("lobby", public_hex, redis_url, state_dir)
    for stale in state_dir.glob("*"):
        stale.unlink()
    ok = True
    try:
        lock.start()
        first = upload("lobby", "obama3.jpg", None)
        seen = lock.wait_accepted(1)
        print(f"   lock pid {lock.proc.pid if lock.proc else '?'} accepted "
              f"{_line(seen[0]) if seen else 'nothing!'}")
        lock.kill()
        print("   kill -9 of the lock; while it is down the camera sends two snapshots:")
        missed = [upload("lobby", "obama3.jpg", None), upload("lobby", "astronaut.png", None)]
        for upload_id in missed:
            decided = _wait_decision(store, upload_id)
            print(f"     decided while the lock was down: "
                  f"{_line(json.loads(decided)['event']) if decided else 'no decision!'}")
            ok &= decided is not None
        lock.start()
        got = lock.wait_accepted(3)
        for entry in got[1:]:
            print(f"   restarted lock (pid {entry['pid']}) caught up from the stream: "
                  f"{_line(entry)}")
        uploads = [e["upload_id"] for e in got]
        exactly_once = sorted(uploads) == sorted([first, *missed])
        print(f"   accepted log: {len(got)} events for 3 uploads, each once: "
              f"{'yes' if exactly_once else 'NO'}")
        ok &= exactly_once
    finally:
        lock.stop()
    return ok


def _wait_decision(store: Any, upload_id: str, timeout_s: float = 60.0) -> bytes | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        wire: bytes | None = store.get_decision(upload_id)
        if wire is not None:
            return wire
        time.sleep(0.05)
    return None


def _line(e: dict[str, Any]) -> str:
    return (f"{e['decision']:<4} {e['reason']:<15} person={e.get('person') or '-':<6} "
            f"stream id {e.get('stream_id')}")


def refusal_story(listener: Any, real_open: bytes, audit_frame: str | None = None) -> bool:
    """The lock (which accepted ``real_open`` once) refuses copies and fakes,
    and a frame's audit record (``audit_frame``: signed, but no door event)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from facegate.core.event_verify import canonical_json, key_id, signed_message

    doc = json.loads(real_open)
    tampered = dict(doc, event={**doc["event"], "person": "mallory"})
    made_up = dict(doc, sig="00" * 64)
    attacker = Ed25519PrivateKey.generate()
    raw = attacker.public_key().public_bytes_raw()
    kid = key_id(raw)
    own = dict(doc, kid=kid, sig=attacker.sign(signed_message(kid, doc["event"])).hex())
    hmac_style = {"event": doc["event"], "sig": "ab" * 32}
    ok = True
    cases: list[tuple[str, bytes]] = [
        ("replay of the real OPEN", real_open),
        ("same OPEN, person changed", canonical_json(tampered)),
        ("same OPEN, made-up signature", canonical_json(made_up)),
        ("OPEN signed with an attacker's key", canonical_json(own)),
        ("old HMAC-style event", canonical_json(hmac_style)),
    ]
    if audit_frame is not None:
        what = json.loads(audit_frame)["event"]["decision"]
        cases.append((f"a frame's audit record ({what})", audit_frame.encode()))
    for label, wire in cases:
        item = listener.check(wire)
        verdict = f"rejected: {item.rejected}" if item.rejected else "ACCEPTED (bad!)"
        print(f"   {label:<36} -> {verdict}")
        ok &= item.rejected is not None
    return ok


def rotation_story(store: Any, client: Any, public_key: Any, upload: Upload) -> bool:
    """Rotate the lobby's key: only a lock holding the new key accepts what follows."""
    from facegate.clients.lock import DoorListener

    old = public_key("lobby")
    version = store.rotate_door_key("lobby")
    new = public_key("lobby")
    print(f"\n== facegate doors rotate-key lobby: version {version}, new public key {new[:16]}...")
    both = DoorListener(client, "lobby", [old, new])
    both.subscribe()
    upload_id = upload("lobby", "obama3.jpg", None)
    got = next((i for i in both.events(timeout_s=60.0) if i.upload_id == upload_id), None)
    both.close()
    only_old = DoorListener(client, "lobby", old).check(got.wire) if got else None
    print(f"   lock holding old + new key  -> "
          f"{'accepted ' + got.event.decision.value if got and got.event else 'refused!'}")
    print(f"   lock holding the old key    -> "
          f"{'rejected: ' + str(only_old.rejected) if only_old else 'no event!'}")
    return bool(got and got.event and only_old and only_old.rejected == "unknown_key")


__all__ = ["LockProcess", "refusal_story", "restart_story", "rotation_story"]
