"""Ingest's HTTP stack (FastAPI under uvicorn) against real Redis and SeaweedFS:
body caps (declared and streamed), probes, the OpenAPI document, and a
schemathesis run over that document (no 500s, only documented statuses)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from facegate.adapters.redis_store import RedisStore
from facegate.tools.settings import ToolSettings
from services.ingest.app import build
from services.ingest.http import MAX_JSON_BYTES, IngestServer, make_app, make_server
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"ingest never decodes" + b"\xff\xd9"
TOOLS = ToolSettings.from_env()
SCHEMATHESIS_EXAMPLES = TOOLS.schemathesis_examples


def _conn(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=15)


def _chunked(url: str, path: str, chunks: list[bytes], headers: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    """POST ``chunks`` with Transfer-Encoding: chunked (no Content-Length);
    stops sending when the server answers early."""
    conn = _conn(url)
    try:
        conn.putrequest("POST", path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for chunk in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused and closed before the end: read its answer
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture
def cam(ingest_settings: IngestSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {ingest_settings.camera_token.get_secret_value()}"}


def test_a_chunked_upload_within_the_limit_is_stored(
    ingest_url: str, doors: RedisStore, cam: dict[str, str], services_redis: redis.Redis
) -> None:
    headers = {**cam, "Content-Type": "image/jpeg"}
    path = "/v1/doors/front/uploads?camera=cam1&badge=alice"
    status, doc = _chunked(ingest_url, path, [JPEG[:10], JPEG[10:]], headers)
    assert status == 201, doc
    assert services_redis.exists(f"facegate:claim:{doc['upload_id']}")


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(
    ingest_url: str, doors: RedisStore, cam: dict[str, str], ingest_settings: IngestSettings
) -> None:
    """No length is declared, so the cap is counted while the body streams in:
    the answer is 413 long before the 3x-too-large body would have ended."""
    limit = ingest_settings.max_upload_bytes
    chunk = b"\0" * 65536
    chunks = [chunk] * (3 * limit // len(chunk))
    status, doc = _chunked(ingest_url, "/v1/doors/front/uploads?camera=cam1",
                           chunks, {**cam, "Content-Type": "image/jpeg"})  # fmt: skip
    assert (status, doc["error"]) == (413, "too_large")
    # the same for a JSON body: presign takes at most MAX_JSON_BYTES
    padding = b'{"camera": "cam1", "pad": "' + b"x" * MAX_JSON_BYTES + b'"}'
    status, doc = _chunked(ingest_url, "/v1/doors/front/presign", [padding],
                           {**cam, "Content-Type": "application/json"})  # fmt: skip
    assert (status, doc["error"]) == (413, "too_large")


def test_a_declared_json_body_over_the_limit_is_refused_unread(
    ingest_url: str, doors: RedisStore, cam: dict[str, str]
) -> None:
    conn = _conn(ingest_url)
    try:
        conn.putrequest("POST", "/v1/doors/front/presign")
        conn.putheader("Authorization", cam["Authorization"])
        conn.putheader("Content-Length", str(MAX_JSON_BYTES + 1))
        conn.endheaders()  # and never send the body
        resp = conn.getresponse()
        assert resp.status == 413 and json.loads(resp.read())["error"] == "too_large"
        assert resp.getheader("Connection") == "close"
    finally:
        conn.close()
    conn = _conn(ingest_url)
    try:
        conn.putrequest("POST", "/v1/events", skip_accept_encoding=True)
        conn.endheaders()  # neither a length nor chunked
        resp = conn.getresponse()
        assert resp.status == 411 and json.loads(resp.read())["error"] == "length_required"
    finally:
        conn.close()


def test_pydantic_refusals_are_400_error_bodies(
    ingest_url: str, doors: RedisStore, cam: dict[str, str]
) -> None:
    cases = ((b'{"camera": 5}', "camera"), (b"[1, 2]", "JSON object"),
             (b'{"camera": "c", "badge": 7}', "badge"), (b"{x", "not JSON"))  # fmt: skip
    for body, words in cases:
        conn = _conn(ingest_url)
        try:
            conn.request("POST", "/v1/doors/front/presign", body,
                         {**cam, "Content-Type": "application/json"})  # fmt: skip
            resp = conn.getresponse()
            doc = json.loads(resp.read())
        finally:
            conn.close()
        assert (resp.status, doc["error"]) == (400, "bad_request"), (body, doc)
        assert words in doc["message"], (body, doc)
        assert set(doc) == {"error", "message"}


def test_healthz_is_liveness_and_readyz_needs_redis_and_s3(
    ingest_url: str, ingest_settings: IngestSettings
) -> None:
    conn = _conn(ingest_url)
    try:
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (
            200, {"status": "ready", "redis": "ok", "s3": "ok"},
        )  # fmt: skip
    finally:
        conn.close()
    for dead in ({"redis_url": "redis://127.0.0.1:1/2"}, {"s3_endpoint": "127.0.0.1:1"}):
        app = build(ingest_settings.model_copy(update=dead))
        server = make_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            answers = {}
            for path in ("/healthz", "/readyz"):
                conn = _conn(url)
                conn.request("GET", path)
                resp = conn.getresponse()
                answers[path] = (resp.status, json.loads(resp.read()).get("error"))
                conn.close()
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
            app.close()
        assert answers == {"/healthz": (200, None), "/readyz": (503, "unavailable")}, dead


def test_the_openapi_document_describes_the_routes_and_errors(ingest_url: str) -> None:
    conn = _conn(ingest_url)
    try:
        conn.request("GET", "/openapi.json")
        resp = conn.getresponse()
        doc = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200
    assert set(doc["paths"]) == {
        "/healthz", "/readyz", "/v1/events", "/v1/doors/{door}/presign", "/v1/doors/{door}/uploads",
    }  # fmt: skip
    error = {"$ref": "#/components/schemas/ErrorBody"}
    upload = doc["paths"]["/v1/doors/{door}/uploads"]["post"]
    assert set(upload["responses"]) == {
        "201", "400", "401", "404", "408", "411", "413", "415", "500", "503",
    }  # fmt: skip
    assert upload["responses"]["415"]["content"]["application/json"]["schema"] == error
    assert "image/jpeg" in upload["requestBody"]["content"]
    presign = doc["paths"]["/v1/doors/{door}/presign"]["post"]
    assert presign["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PresignRequest"
    }
    assert "422" not in json.dumps(doc["paths"])  # validation answers 400, as documented
    assert set(doc["components"]["securitySchemes"]) == {"webhookToken", "cameraToken"}


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is not installed (it is in facegate[dev]: make install)")
    return found


@pytest.mark.parametrize(
    ("token", "include"),
    [("camera", "^/v1/doors/"), ("webhook", "^/v1/events$"), (None, "^/(healthz|readyz)$")],
)
def test_schemathesis_finds_no_500_and_no_undocumented_status(
    ingest_url: str,
    ingest_settings: IngestSettings,
    doors: RedisStore,
    tmp_path: Path,
    token: str | None,
    include: str,
) -> None:
    """Property-based requests generated from the served OpenAPI document
    (valid and invalid ones), against the real ingest process: every answer
    is a documented status with the documented body, and none is a 500."""
    args = [
        _schemathesis(), "run", f"{ingest_url}/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--include-path-regex", include,
        "--max-examples", str(SCHEMATHESIS_EXAMPLES),
        "--seed", "9", "--workers", "1", "--request-timeout", "20",
        "--generation-database", "none", "--no-color",
        "--phases", "examples,coverage,fuzzing",
    ]  # fmt: skip
    if token is not None:
        secret = getattr(ingest_settings, f"{token}_token").get_secret_value()
        args += ["--header", f"Authorization: Bearer {secret}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "No issues found" in out or "passed" in out, out[-3000:]


def test_the_ingest_process_serves_and_stops_cleanly_on_sigterm(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """``python -m services.ingest`` under uvicorn: ready, then SIGTERM -> exit 0;
    its log never shows a token sent in a URL."""
    port = TOOLS.test_base_port + 40
    env = {**os.environ, **stack_env, "FACEGATE_INGEST_PORT": str(port),
           "FACEGATE_RECONCILE_INTERVAL_S": "0", "FACEGATE_LOG_LEVEL": "DEBUG"}  # fmt: skip
    log_path = tmp_path / "ingest.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = _conn(url)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        conn.close()
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            secret = stack_env["FACEGATE_WEBHOOK_TOKEN"]
            conn = _conn(url)
            conn.request("POST", f"/v1/events?token={secret}", b"{}")
            assert conn.getresponse().status == 401
            conn.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log_path.read_text(errors="replace")
    assert secret not in text
    assert "POST /v1/events?..." in text  # logged at DEBUG, query cut


def test_an_empty_badge_or_approach_means_none(
    ingest_url: str, doors: RedisStore, cam: dict[str, str], services_redis: redis.Redis
) -> None:
    conn = _conn(ingest_url)
    try:
        conn.request("POST", "/v1/doors/front/presign",
                     b'{"camera": "cam1", "badge": "", "approach": ""}',
                     {**cam, "Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        doc = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200, doc
    claim = services_redis.hgetall(f"facegate:claim:{doc['upload_id']}")
    assert claim.get(b"badge", b"") == b"" and b"approach" not in claim


def test_a_body_that_stops_arriving_is_answered_408(
    ingest_settings: IngestSettings, doors: RedisStore, cam: dict[str, str]
) -> None:
    app = build(ingest_settings)
    server = IngestServer(make_app(app, body_timeout_s=0.5), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        conn = _conn(f"http://127.0.0.1:{server.server_address[1]}")
        conn.putrequest("POST", "/v1/doors/front/uploads?camera=cam1")
        conn.putheader("Authorization", cam["Authorization"])
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Content-Length", "1000")
        conn.endheaders()
        conn.send(JPEG[:10])  # and then nothing
        started = time.monotonic()
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())["error"]) == (408, "request_timeout")
        assert time.monotonic() - started < 10
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.close()
