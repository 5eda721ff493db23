"""The faults of ``bench/chaos.py`` that need more than a signal to a process.

- :class:`Republisher`: the same Celery task message delivered several times:
  it watches the broker's ``unacked`` hash (kombu's Redis transport keeps
  every delivered, not yet acknowledged message there as
  ``[payload, exchange, routing_key]``) and pushes each new one back onto
  its queue ``copies`` more times, byte for byte (what the transport itself
  does when it restores a message after the visibility timeout).
- :class:`OtherHost`: a network namespace with a veth pair to this host
  (``ip netns``; needs root and iproute2), in which an encoder runs as if
  on another machine. The stack listens on 127.0.0.1 only, so a small TCP
  relay on the host end of the veth forwards Redis and S3; cutting the link
  (``ip link set <veth> down``) leaves the encoder with open connections
  that go silent, as a pulled cable or a dead switch would.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

NETNS = "fgchaos"
HOST_VETH = "fgchaos0"
NS_VETH = "fgchaos1"
HOST_ADDR = "10.231.77.1"
NS_ADDR = "10.231.77.2"


# --------------------------------------------------------------------------- duplicates


class Republisher:
    """Re-publish every task message seen in the broker's ``unacked`` hash."""

    def __init__(self, broker: Any, copies: int = 2, poll_s: float = 0.02) -> None:
        self.broker = broker
        self.copies = copies
        self.poll_s = poll_s
        self.seen: set[bytes] = set()
        self.republished = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.seen = set(self.broker.hkeys("unacked"))  # only messages delivered from now on
        self._thread = threading.Thread(target=self._run, name="republisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                held = self.broker.hgetall("unacked")
            except Exception:  # a broker restart is another scenario's business
                time.sleep(self.poll_s)
                continue
            for tag, raw in held.items():
                if tag in self.seen:
                    continue
                self.seen.add(tag)
                try:
                    payload, _exchange, routing_key = json.loads(raw)
                except (ValueError, TypeError):
                    continue
                for _ in range(self.copies):
                    self.broker.lpush(routing_key, json.dumps(payload))
                    self.republished += 1
            time.sleep(self.poll_s)

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        return self.republished


# --------------------------------------------------------------------------- another host


def netns_unavailable() -> str | None:
    """Why an encoder cannot run in a namespace of its own here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (ip netns add, veth pair)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip command"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.strip()}"
    return None


def _ip(*args: str, check: bool = True) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


class _Relay:
    """TCP relay ``HOST_ADDR:port`` -> ``127.0.0.1:port`` (one thread per connection)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((HOST_ADDR, port))
        self.server.listen(64)
        self._closing = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"relay-{port}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5.0)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closing = True
        for sock in [self.server, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()


class OtherHost:
    """An encoder in its own network namespace, reached over a veth pair."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.relays: list[_Relay] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def setup(self) -> None:
        self.teardown_net()
        _ip("netns", "add", NETNS)
        _ip("link", "add", HOST_VETH, "type", "veth", "peer", "name", NS_VETH)
        _ip("link", "set", NS_VETH, "netns", NETNS)
        _ip("addr", "add", f"{HOST_ADDR}/30", "dev", HOST_VETH)
        _ip("link", "set", HOST_VETH, "up")
        _ip("netns", "exec", NETNS, "ip", "addr", "add", f"{NS_ADDR}/30", "dev", NS_VETH)
        _ip("netns", "exec", NETNS, "ip", "link", "set", NS_VETH, "up")
        _ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        self.relays = [_Relay(port) for port in self.ports]

    def start_encoder(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", NETNS, *argv], cwd=cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.proc.pid

    def cut(self) -> None:
        _ip("link", "set", HOST_VETH, "down")

    def restore(self) -> None:
        _ip("link", "set", HOST_VETH, "up")

    def stop_encoder(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10.0)

    def teardown_net(self) -> None:
        for relay in self.relays:
            relay.close()
        self.relays = []
        _ip("link", "del", HOST_VETH, check=False)
        _ip("netns", "del", NETNS, check=False)

    def close(self) -> None:
        self.stop_encoder()
        self.teardown_net()
