"""The local stack as an attacker on the same machine sees it: no way to
write an upload without S3 credentials, and no secret in any log line.

Against the session's real SeaweedFS (``weed mini`` with the stack's
``security.toml``), Redis and ingest processes.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from minio import Minio

from facegate.adapters.objectstore import REGION, MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.errors import ConfigError
from facegate.tools.devstack import GRPC_OFFSET, HOST, Stack
from services.ingest.app import build
from services.ingest.http import make_server
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0 an attacker's picture \xff\xd9"


def exposed_ports(stack: Stack) -> dict[str, int]:
    """Every port the local stack listens on: HTTP ports and weed's gRPC ports."""
    ports = dict(stack.config.ports())
    for name in ("s3", "master", "volume", "filer", "weed_admin"):
        ports[f"{name}_grpc"] = ports[name] + GRPC_OFFSET
    return ports


def attempt(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> str:
    """One raw request; what came back (a status or the error), never raises."""
    conn = http.client.HTTPConnection(HOST, port, timeout=3)
    try:
        conn.request(method, path, body=body, headers=headers)
        return str(conn.getresponse().status)
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "facegateboundary7d1f"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_no_unauthenticated_write_creates_an_upload(
    stack: Stack, object_store: MinioObjectStore, ingest_url: str
) -> None:
    """PUT and POST (raw, multipart, TUS) to every exposed port, on the
    filer's and S3's path shapes: not one object appears under uploads/."""
    bucket = object_store.bucket
    tried: dict[str, list[str]] = {}
    written: list[str] = []
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(JPEG))}
    for name, port in exposed_ports(stack).items():
        for shape in ("filer", "s3"):
            key = keys.upload_object_key("front", "intruder", keys.new_upload_id())
            written.append(key)
            path = f"/buckets/{bucket}/{key}" if shape == "filer" else f"/{bucket}/{key}"
            folder = path.rsplit("/", 1)[0] + "/"
            form, form_type = multipart(key.rsplit("/", 1)[-1], JPEG)
            results = [
                attempt(port, "PUT", path, JPEG, {"Content-Type": "image/jpeg"}),
                attempt(port, "POST", path, JPEG, {"Content-Type": "image/jpeg"}),
                attempt(port, "POST", folder, form, {"Content-Type": form_type}),
                attempt(port, "POST", f"/.tus{path}", b"", tus),
            ]
            tried[f"{name}:{shape}"] = results
            assert "200" not in results[:2] and "201" not in results[:3], (name, shape, results)
    time.sleep(0.5)
    found = {o.key for o in object_store.list_objects("uploads/front/intruder/")}
    assert found.isdisjoint(written), (found, tried)
    # The filer's HTTP API answers, but only with a JWT: proof it was tried, not skipped
    filer_put = tried["filer:filer"][0]
    assert filer_put == "401", tried["filer:filer"]


def _grpc_create_entry_request(directory: str, name: str, content: bytes) -> bytes:
    """A ``filer_pb.CreateEntryRequest`` (weed/pb/filer.proto), encoded by hand."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            low, n = n & 0x7F, n >> 7
            out.append(low | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number: int, payload: bytes | int) -> bytes:
        if isinstance(payload, int):
            return varint(number << 3) + varint(payload)
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    now = int(time.time())
    attributes = field(1, len(content)) + field(2, now) + field(3, 0o660) + field(6, now)
    entry = field(1, name.encode()) + field(4, attributes) + field(9, content)
    return field(1, directory.encode()) + field(2, entry)


def test_the_filer_grpc_port_wants_a_client_certificate(
    stack: Stack, object_store: MinioObjectStore
) -> None:
    """weed's filer gRPC ``CreateEntry`` writes an object with no credential
    at all; the stack's mutual TLS turns every client without its certificate
    away, with or without TLS of its own."""
    grpc = pytest.importorskip("grpc", reason="grpcio comes with TensorFlow (the dev extra)")
    name = keys.new_upload_id() + ".jpg"
    request = _grpc_create_entry_request(
        f"/buckets/{object_store.bucket}/uploads/front/intruder", name, JPEG
    )
    target = f"{HOST}:{stack.config.filer_port + GRPC_OFFSET}"
    ca = (stack.state_dir / "seaweedfs" / "tls" / "ca.crt").read_bytes()
    channels = {
        "plaintext": grpc.insecure_channel(target),
        "tls without a client certificate": grpc.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=ca)
        ),
    }
    for label, channel in channels.items():
        create = channel.unary_unary(
            "/filer_pb.SeaweedFiler/CreateEntry",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.RpcError) as info:
            create(request, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, label
        channel.close()
    assert object_store.stat(f"uploads/front/intruder/{name}") is None


def test_the_filer_does_not_serve_uploads_without_a_jwt(
    stack: Stack, object_store: MinioObjectStore
) -> None:
    key = keys.upload_object_key("front", "cam1", keys.new_upload_id())
    object_store.put(key, JPEG, "image/jpeg")
    for port in (stack.config.filer_port, stack.config.volume_port, stack.config.master_port):
        status = attempt(port, "GET", f"/buckets/{object_store.bucket}/{key}", b"", {})
        assert status in ("401", "404"), (port, status)
    assert object_store.get(key, 1000) == JPEG  # S3 with the credentials still reads it


def test_s3_refuses_wrong_and_missing_credentials(
    stack: Stack, object_store: MinioObjectStore, stack_env: dict[str, str]
) -> None:
    key = keys.upload_object_key("front", "intruder", keys.new_upload_id())
    access = stack_env["FACEGATE_S3_ACCESS_KEY"]
    for access_key, secret_key in ((access, "wrong-" + "x" * 30), ("nobody-" + "y" * 30, "z" * 40)):
        client = Minio(stack.config.s3_endpoint, access_key=access_key, secret_key=secret_key,
                       secure=False, region=REGION)  # fmt: skip
        with pytest.raises(Exception, match=r"SignatureDoesNotMatch|InvalidAccessKeyId|Access"):
            client.put_object(object_store.bucket, key, io.BytesIO(JPEG), len(JPEG))
    anonymous = attempt(stack.config.s3_port, "PUT", f"/{object_store.bucket}/{key}", JPEG, {})
    assert anonymous == "403"
    assert object_store.stat(key) is None
    wrong = MinioObjectStore(
        IngestSettings.from_env({**stack_env, "FACEGATE_S3_SECRET_KEY": "wrong-" + "q" * 30})
    )
    with pytest.raises(ConfigError):
        wrong.put(key, JPEG, "image/jpeg")


# --- secrets never in a log line ---------------------------------------------------------


def stack_secrets(stack: Stack, env: dict[str, str]) -> dict[str, str]:
    """The five FACEGATE secrets and weed's JWT keys."""
    found = {k: env[k] for k in ("FACEGATE_S3_ACCESS_KEY", "FACEGATE_S3_SECRET_KEY",
                                 "FACEGATE_SIGNING_SECRET", "FACEGATE_WEBHOOK_TOKEN",
                                 "FACEGATE_CAMERA_TOKEN")}  # fmt: skip
    security = (stack.state_dir / "seaweedfs" / "security.toml").read_text()
    for i, value in enumerate(re.findall(r'\[jwt[a-z_.]*\]\nkey = "([^"]+)"', security)):
        found[f"weed-jwt-{i}"] = value
    assert len(found) == 9
    return found


def leaks(text: str, secrets_: dict[str, str]) -> list[str]:
    return [name for name, value in secrets_.items() if value and value in text]


def test_no_secret_in_any_log_file_of_the_stack(
    stack: Stack, stack_env: dict[str, str], ingest_url: str, doors: RedisStore
) -> None:
    """Provoke what used to leak: a webhook to an ingest that is down (weed
    logs the failed URL), a client that puts tokens in the query string,
    wrong tokens; then read every log the stack wrote."""
    secrets_ = stack_secrets(stack, stack_env)
    camera, webhook = stack_env["FACEGATE_CAMERA_TOKEN"], stack_env["FACEGATE_WEBHOOK_TOKEN"]
    req = urllib.request.Request(
        f"{ingest_url}/v1/doors/front/presign", data=b'{"camera": "cam1"}', method="POST",
        headers={"Authorization": f"Bearer {camera}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        url = json.loads(resp.read())["url"]
    stack.stop("ingest")
    try:
        put = urllib.request.Request(url, data=JPEG, method="PUT")
        with urllib.request.urlopen(put, timeout=10) as resp:
            assert resp.status == 200
        time.sleep(1.0)  # weed tries the webhook once, fails, logs it
        assert "failed to send" in stack.log_file("seaweedfs").read_text(errors="replace")
    finally:
        stack.start("ingest")
    for path in (f"/v1/events?token={webhook}", f"/v1/doors/front/presign?token={camera}",
                 f"/nowhere?camera_token={camera}"):  # fmt: skip
        try:
            urllib.request.urlopen(
                urllib.request.Request(ingest_url + path, data=b"{}", method="POST"), timeout=10
            )
        except urllib.error.HTTPError as err:
            err.close()
    bad = urllib.request.Request(
        f"{ingest_url}/v1/events", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {webhook}x"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=10)
    info.value.close()
    time.sleep(0.3)
    logs = sorted(p for p in stack.log_dir.glob("*") if p.is_file())
    assert {p.stem for p in logs} >= {"redis", "seaweedfs", "ingest"}
    for path in logs:
        assert leaks(path.read_text(errors="replace"), secrets_) == [], path


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def debug_ingest(
    ingest_settings: IngestSettings, doors: RedisStore
) -> Iterator[tuple[int, _Capture]]:
    """An in-process ingest server whose every log record (DEBUG included) is kept."""
    capture = _Capture()
    logger = logging.getLogger("services.ingest")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    app = build(ingest_settings)
    server = make_server(app, HOST, 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], capture
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.close()
        logger.removeHandler(capture)
        logger.setLevel(old_level)


def test_ingest_logs_no_token_even_at_debug(
    debug_ingest: tuple[int, _Capture], ingest_settings: IngestSettings, services_redis: redis.Redis
) -> None:
    port, capture = debug_ingest
    webhook = ingest_settings.webhook_token.get_secret_value()
    camera = ingest_settings.camera_token.get_secret_value()
    for path, headers in (
        (f"/v1/events?token={webhook}", {}),
        (f"/v1/events?x=1&token={webhook}", {"Authorization": "Bearer nope"}),
        (f"/v1/doors/front/presign?token={camera}", {"Authorization": f"Bearer {camera}"}),
        (f"/v1/doors/front/uploads?camera=c&token={camera}", {"Content-Type": "text/plain"}),
        (f"/healthz?token={webhook}", {}),
    ):
        attempt(port, "POST", path, b'{"camera": "c"}', headers)
    sock = socket.create_connection((HOST, port), timeout=3)  # a malformed request line
    sock.sendall(f"GARBAGE /?token={webhook}\r\n\r\n".encode())
    sock.recv(1000)
    sock.close()
    time.sleep(0.2)
    text = "\n".join(capture.lines)
    assert "POST /v1/events?..." in text  # the requests were logged, redacted
    assert webhook not in text and camera not in text
