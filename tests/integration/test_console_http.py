"""The console over HTTP: a real ``python -m services.console`` process on
the test stack (real Redis and SeaweedFS), driven by an HTTP client.

Viewers can change nothing (every changing route answers 403 and writes
nothing), forms without the right CSRF token are refused, repeated failed
sign-ins lock the account, an expired session is sent back to sign in, bad
uploads are refused before anything is stored, and every admin change lands
in the audit stream. Enrolment through the encoder is tested in
``tests/e2e/test_console_browser.py`` (it needs the encoder worker)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import pytest
import redis
from PIL import Image

from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_operators import RedisOperators, hash_password
from facegate.adapters.redis_store import RedisStore
from facegate.core.operators import Role
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.tools.devstack import Stack, StackError

pytestmark = pytest.mark.integration

PASSWORD = "integration-password-1"
_HASH: dict[str, str] = {}

CHANGES = [
    ("/doors", {"door": "hacked", "mode": "identify", "allowed": "*"}),
    ("/doors/front", {"mode": "identify", "allowed": "*", "threshold": "1.5"}),
    ("/calibration/front/threshold", {"threshold": "1.9"}),
    ("/people/alice/revoke", {"confirm": "alice"}),
    ("/snapshots/enrol", {"person": "mallory", "snapshot": "front/cam/" + "0" * 32}),
    ("/people", {"name": "mallory"}),
]


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    try:
        stack.start("console")
    except StackError as exc:
        pytest.fail(f"could not start the console: {exc}")
    return stack.config.console_url


@pytest.fixture
def site(services_redis: redis.Redis) -> Iterator[RedisStore]:
    store = RedisStore(services_redis)
    store.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice"}), 0.6))
    operators = RedisOperators(services_redis)
    if not _HASH:
        _HASH["h"] = hash_password(PASSWORD)
    operators.add_operator("ann", Role.ADMIN, _HASH["h"], replace=True)
    operators.add_operator("vic", Role.VIEWER, _HASH["h"], replace=True)
    yield store


OPEN_CLIENTS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


def sign_in(url: str, name: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, timeout=30.0)
    OPEN_CLIENTS.append(client)
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = client.post(
        "/login", data={"username": name, "password": password, "csrf": csrf.group(1),
                        "next": "/doors"},
    )
    return client, answer


def csrf_of(client: httpx.Client, path: str = "/doors") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def admin_records(store: RedisStore) -> list[str]:
    return [a.action.value for _, a in store.admin_actions(100)]


def test_pages_need_a_session(console_url: str, site: RedisStore) -> None:
    with httpx.Client(base_url=console_url) as client:
        for path in ("/doors", "/people", "/live", "/log", "/log.csv", "/calibration"):
            r = client.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        assert client.get("/live/events").status_code == 401
        assert client.post("/doors", data={"door": "x"}).status_code == 401
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        metrics = client.get("/metrics")
        assert "facegate_console_requests_total" in metrics.text


def test_sign_in_sets_a_strict_httponly_cookie(console_url: str, site: RedisStore) -> None:
    client, answer = sign_in(console_url, "ann")
    assert answer.status_code == 303 and answer.headers["location"] == "/doors"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/doors")
    assert page.status_code == 200 and "ann (admin)" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # the door's public key is on its page
    assert re.search(r'id="public-key">[0-9a-f]{64}<', client.get("/doors/front").text)


def test_sign_in_form_needs_its_own_csrf(console_url: str, site: RedisStore) -> None:
    with httpx.Client(base_url=console_url) as client:
        r = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": "x"})
        assert r.status_code == 403 and "facegate_session" not in r.headers.get("set-cookie", "")


def test_viewer_sees_but_cannot_change(console_url: str, site: RedisStore) -> None:
    client, answer = sign_in(console_url, "vic")
    assert answer.status_code == 303
    for path in ("/doors", "/people", "/log", "/live", "/doors/front", "/calibration/front"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'method="post" action="/doors' not in page.text
        assert "Revoke</button>" not in page.text and 'id="set-threshold"' not in page.text
    csrf = csrf_of(client)
    before = (site.get_door("front"), site.list_doors(), admin_records(site))
    for path, data in CHANGES:
        r = client.post(path, data={**data, "csrf": csrf})
        assert r.status_code == 403, path
        assert "viewer" in r.text
    assert (site.get_door("front"), site.list_doors(), admin_records(site)) == before


def test_forged_or_missing_csrf_is_refused(console_url: str, site: RedisStore) -> None:
    client, _ = sign_in(console_url, "ann")
    real = csrf_of(client)
    before = (site.get_door("front"), site.list_doors())
    for token in (None, "", real[:-2] + "zz", "forged"):
        for path, data in CHANGES:
            form = dict(data) if token is None else {**data, "csrf": token}
            r = client.post(path, data=form)
            assert r.status_code == 403, (path, token)
            assert "security token" in r.text
    # another admin's session token is no good either
    other, _ = sign_in(console_url, "ann")
    r = client.post("/doors", data={"door": "x1", "csrf": csrf_of(other)})
    assert r.status_code == 403
    assert (site.get_door("front"), site.list_doors()) == before


def test_admin_changes_are_audited(console_url: str, site: RedisStore) -> None:
    client, _ = sign_in(console_url, "ann")
    csrf = csrf_of(client)
    r = client.post("/doors", data={"door": "lobby", "mode": "identify", "allowed": "alice, bob",
                                    "threshold": "", "margin": "0.1", "csrf": csrf})
    assert r.status_code == 303
    lobby = site.get_door("lobby")
    assert lobby is not None and lobby.mode is DoorMode.IDENTIFY
    assert lobby.allowed == {"alice", "bob"} and lobby.threshold is None
    r = client.post("/doors/lobby", data={"mode": "identify", "allowed": "alice",
                                          "threshold": "0.55", "margin": "0.1", "csrf": csrf})
    assert r.status_code == 303 and site.get_door("lobby").threshold == 0.55  # type: ignore[union-attr]
    r = client.post("/calibration/lobby/threshold", data={"threshold": "0.5", "csrf": csrf})
    assert r.status_code == 303 and site.get_door("lobby").threshold == 0.5  # type: ignore[union-attr]
    actions = site.admin_actions(10)
    assert [a.action.value for _, a in actions][:3] == ["threshold_set", "door_set", "door_set"]
    assert all(a.actor == "console:ann" for _, a in actions[:3])
    log = client.get("/log", params={"decision": "admin"})
    assert "threshold_set" in log.text and "console:ann" in log.text
    csv = client.get("/log.csv", params={"decision": "admin"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.count("\n") == 4 and "threshold_set" in csv.text
    # bad input: a clear message, nothing written
    for data in ({"door": "a/b"}, {"door": "lobby"}, {"door": "new", "threshold": "x"}):
        r = client.post("/doors", data={**data, "csrf": csrf})
        assert r.status_code == 400 and 'class="error"' in r.text
    assert site.list_doors() == ["front", "lobby"]
    assert client.get("/doors/nope").status_code == 404
    assert client.post("/doors/nope", data={"csrf": csrf}).status_code == 404
    r = client.post("/people/nobody/revoke", data={"confirm": "nobody", "csrf": csrf})
    assert r.status_code == 404
    r = client.post("/people/alice/revoke", data={"confirm": "not-alice", "csrf": csrf})
    assert r.status_code == 400
    assert client.get("/calibration/front").status_code == 200


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(out, "JPEG")
    return out.getvalue()


def test_bad_uploads_are_refused_before_anything_is_stored(
    console_url: str, site: RedisStore, object_store: MinioObjectStore
) -> None:
    client, _ = sign_in(console_url, "ann")
    csrf = csrf_of(client, "/people")
    files = [("photos", ("a.jpg", jpeg(), "image/jpeg")),
             ("photos", ("notes.jpg", b"%PDF-1.4 not a photo", "image/jpeg"))]
    r = client.post("/people", data={"name": "zed", "csrf": csrf}, files=files)
    assert r.status_code == 415
    assert "notes.jpg" in r.text and "not an image" in r.text and "nothing was stored" in r.text
    huge = b"\xff\xd8" + b"0" * (9 * 2**20)
    r = client.post("/people", data={"name": "zed", "csrf": csrf},
                    files=[("photos", ("big.jpg", huge, "image/jpeg"))])
    assert r.status_code == 413 and "too large" in r.text
    r = client.post("/people", data={"name": "../zed", "csrf": csrf},
                    files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    assert r.status_code == 400
    # a body over the whole request limit is refused from its Content-Length
    r = client.post("/people", content=b"x" * (90 * 2**20),
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413

    # and, without a Content-Length (chunked), as it arrives
    def chunks() -> Iterator[bytes]:
        yield b"--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf.encode()
        yield b"\r\n--x\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\""
        yield b"\r\nContent-Type: image/jpeg\r\n\r\n"
        for _ in range(90):
            yield b"y" * 2**20

    r = client.post("/people", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413
    assert object_store.list_objects("enroll/zed/") == []
    assert site.people() == []


def test_lockout_after_repeated_failures(console_url: str, site: RedisStore) -> None:
    for _ in range(5):
        _, answer = sign_in(console_url, "ann", "wrong-password-123")
        assert answer.status_code == 401 and "Wrong name or password" in answer.text
    _, answer = sign_in(console_url, "ann", PASSWORD)
    assert answer.status_code == 429 and "locked" in answer.text
    # the other account still signs in
    _, answer = sign_in(console_url, "vic")
    assert answer.status_code == 303


def test_expired_and_signed_out_sessions(
    console_url: str, site: RedisStore, services_redis: redis.Redis
) -> None:
    client, _ = sign_in(console_url, "ann")
    csrf = csrf_of(client)
    # age the session past its idle limit, as the clock would
    (key,) = services_redis.keys("facegate:console:session:*")
    services_redis.hset(key, "last_seen", "1000.0")
    r = client.get("/doors")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = client.post("/doors", data={"door": "late", "csrf": csrf})
    assert r.status_code == 401 and "sign in again" in r.text
    assert "late" not in site.list_doors()
    assert services_redis.keys("facegate:console:session:*") == []
    client, _ = sign_in(console_url, "ann")
    r = client.post("/logout", data={"csrf": csrf_of(client)})
    assert r.status_code == 303
    assert client.get("/doors").status_code == 303


def test_live_events_stream_new_door_events(console_url: str, site: RedisStore) -> None:
    import json
    import threading
    import time

    from store_contract import event, sign

    from facegate.core.messages import Decision, Reason

    client, _ = sign_in(console_url, "vic")  # viewers watch too
    old = event(upload_id="1" * 32)
    assert site.record_decision(old, sign) is not None  # before the page opened: not shown
    new = event(upload_id="2" * 32, decision=Decision.OPEN, reason=Reason.GRANTED,
                person="alice", distance=0.31, issued_at=time.time(),
                expires_at=time.time() + 30, stamps={"uploaded": time.time() - 0.25})

    def later() -> None:
        time.sleep(1.5)
        site.record_decision(new, sign)

    got: list[dict[str, object]] = []
    writer = threading.Thread(target=later)
    with client.stream("GET", "/live/events", timeout=20.0) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        writer.start()
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "decision":
                got.append(json.loads(line[6:]))
                break
    writer.join()
    assert len(got) == 1
    shown = got[0]
    assert shown["upload_id"] == "2" * 32 and shown["decision"] == "OPEN"
    assert shown["person"] == "alice" and shown["distance"] == "0.310"
    assert shown["snapshot"] == f"/snapshots/front/cam/{'2' * 32}"
    assert 200 <= int(str(shown["latency_ms"])) <= 2000


def test_unknown_things_and_bad_filters(console_url: str, site: RedisStore) -> None:
    client, _ = sign_in(console_url, "vic")
    assert client.get(f"/snapshots/front/cam/{'0' * 32}").status_code == 404
    assert client.get("/snapshots/front/cam/not-an-id").status_code == 404
    assert client.get("/people/nobody/photo").status_code == 404
    assert client.get("/calibration/nope").status_code == 404
    assert client.get("/log", params={"decision": "MAYBE"}).status_code == 400
    assert client.get("/log", params={"reason": "because"}).status_code == 400
    assert client.get("/log", params={"since": "yesterday"}).status_code == 400
    assert client.get("/log", params={"before": "x; DROP"}).status_code == 400
    assert client.get("/login", params={"next": "//evil.example"}).status_code == 200
    page = client.get("/login", params={"next": "//evil.example"})
    assert 'value="//evil.example"' not in page.text
