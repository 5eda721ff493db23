"""A real Mosquitto for the MQTT tests: its own ports, config, password file
and a TLS listener with a CA made here (``cryptography``).

Debian's ``mosquitto`` (``scripts/ensure-mosquitto.sh`` installs it when
missing); never the system's service on 1883. Persistence is on (a folder
of its own), so a restart with SIGTERM keeps retained messages and the
sessions of clients that asked for one, as a production broker does.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER = "bridge"
PASSWORD = "bridge-test-password-0123456789"
READER = "reader"
READER_PASSWORD = "reader-test-password-0123456789"


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None, *, ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_ca(folder: Path, name: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = _cert(name, key, None, None, ca=True)
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_leaf(folder: Path, name: str, ca: x509.Certificate,
              ca_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    key = _key()
    cert = _cert(name, key, ca, ca_key, ca=False)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path


@dataclass
class Broker:
    """One Mosquitto process: ``port`` (plain, passwords), ``tls_port`` and,
    when given, ``mtls_port`` (TLS that requires a client certificate from
    the test CA: ``client_cert``, ``client_key``)."""

    folder: Path
    port: int
    tls_port: int
    mtls_port: int = 0
    ca_file: Path = field(init=False)
    client_cert: Path = field(init=False)
    client_key: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_file, ca, ca_key = make_ca(self.folder, "test-ca")
        cert, key = make_leaf(self.folder, "broker", ca, ca_key)
        self.client_cert, self.client_key = make_leaf(self.folder, "client", ca, ca_key)
        (self.folder / "data").mkdir(exist_ok=True)
        passwd = self.folder / "passwd"
        passwd.write_text("")
        for user, password in ((USER, PASSWORD), (READER, READER_PASSWORD)):
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text(
            "per_listener_settings true\n"
            "user root\n"
            f"persistence true\npersistence_location {self.folder / 'data'}/\n"
            f"log_dest file {self.folder / 'mosquitto.log'}\nlog_type all\n"
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous false\npassword_file {passwd}\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"allow_anonymous false\npassword_file {passwd}\n"
            f"cafile {self.ca_file}\ncertfile {cert}\nkeyfile {key}\n"
        )
        if self.mtls_port:
            with self.config.open("a") as conf:
                conf.write(
                    f"listener {self.mtls_port} 127.0.0.1\n"
                    f"allow_anonymous false\npassword_file {passwd}\n"
                    f"cafile {self.ca_file}\ncertfile {cert}\nkeyfile {key}\n"
                    "require_certificate true\n"
                )
        os.chmod(passwd, 0o600)

    def start(self) -> None:
        binary = find_mosquitto()
        assert binary is not None
        with (self.folder / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_tail()}")
            try:
                for port in (self.port, self.tls_port, self.mtls_port):
                    if port:
                        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        self.proc = None

    def log_tail(self) -> str:
        parts = []
        for name in ("stderr.log", "mosquitto.log"):
            path = self.folder / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)


class Subscriber:
    """A QoS 1 subscriber that gathers what it hears; ``session=True``: a
    persistent session (the broker queues for it while it is away)."""

    def __init__(self, port: int, topics: list[str], *, client_id: str | None = None,
                 session: bool = False) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self._topics = topics
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{time.time_ns()}",
            clean_session=not session, protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(READER, READER_PASSWORD)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(host="127.0.0.1", port=port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(10.0):
            raise RuntimeError("the test subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The JSON payloads heard on ``topic`` (non-JSON: ``{"raw": text}``)."""
        out = []
        for t, payload, _ in list(self.messages):
            if t == topic:
                try:
                    out.append(json.loads(payload))
                except ValueError:
                    out.append({"raw": payload.decode(errors="replace")})
        return out

    def retained(self, topic: str) -> list[bytes]:
        return [p for t, p, r in list(self.messages) if t == topic and r]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


__all__ = ["PASSWORD", "USER", "Broker", "Subscriber", "find_mosquitto", "make_ca", "make_leaf"]
