"""End to end, the trust guarantees of the ingest side, on the whole
pipeline (real SeaweedFS, Redis, ingest, encoder with the real model,
matcher):

- uploads made while ingest is down are each decided exactly once (the
  reconciler finds them; a late webhook racing it changes nothing), and
  being older than the deadline by then, they are ``DENY timeout``;
- an object written straight into the bucket (S3 credentials, no claim) is
  ``DENY unclaimed`` even with a resident's face at an identify door;
- no secret appears in any log file the pipeline wrote.

The e2e stack runs the reconciler every second with a 4 s grace
(``tests/e2e/conftest.py``) and the default 10 s deadline.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from e2e_site import Site

from facegate.core import keys
from facegate.core.policy import DoorMode, DoorPolicy

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

DEADLINE_S = 10.0
WAIT_S = 60.0


@pytest.fixture(scope="module")
def photos(samples_dir: Path) -> dict[str, bytes]:
    return {n: (samples_dir / n).read_bytes() for n in ("obama.jpg", "obama3.jpg")}


@pytest.fixture(scope="module")
def building(site: Site, photos: dict[str, bytes]) -> Site:
    """A verify door and an identify door that lets every resident in; obama
    enrolled (unless an earlier module of the session did it)."""
    if site.store.get_door("front") is None:
        site.admin.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset(), 0.6))
    if site.store.get_door("lobby") is None:
        site.admin.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    if "obama" not in site.store.people():
        site.admin.enroll("obama", [("obama.jpg", photos["obama.jpg"])], doors=["front"])
    return site


def decision(site: Site, upload_id: str, timeout_s: float = WAIT_S) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while (wire := site.store.get_decision(upload_id)) is None:
        if time.monotonic() > deadline:
            pytest.fail(
                f"no decision for {upload_id} within {timeout_s} s\ningest:\n{site.log('ingest')}"
                f"\nencoder:\n{site.log('encoder-1')}\nmatcher:\n{site.log('matcher-1')}"
            )
        time.sleep(0.1)
    event: dict[str, object] = json.loads(wire)["event"]
    return event


def audit_count(site: Site, upload_id: str) -> int:
    entries = site.redis.xrange(keys.AUDIT_STREAM)
    # admin records (kind=admin) share the stream and name no upload
    return sum(1 for _, fields in entries if fields.get(b"upload_id") == upload_id.encode())


def minio_body(bucket: str, key: str) -> bytes:
    """A webhook for ``key`` as MinIO would deliver it from its queue, late."""
    record = {
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
    }
    return json.dumps({"EventName": "s3:ObjectCreated:Put", "Records": [record]}).encode()


def test_uploads_while_ingest_is_down_are_each_decided_once(
    building: Site,
    photos: dict[str, bytes],
) -> None:
    site = building
    tickets = [site.camera.presign("front", "cam1", "obama") for _ in range(3)]
    tickets.append(site.camera.presign("lobby", "cam1", None))
    intruder = keys.upload_object_key("lobby", "cam7", keys.new_upload_id())
    site.stack.stop("ingest")
    try:
        for ticket in tickets:  # the cameras go on: S3 does not need ingest
            site.camera.put(ticket, photos["obama3.jpg"])
        site.objects.put(intruder, photos["obama3.jpg"], "image/jpeg")
        time.sleep(DEADLINE_S + 1.0)  # down for longer than the deadline
    finally:
        site.stack.start("ingest")
    # a late webhook (MinIO's queue, a retry, a replay) races the reconciler
    token = site.env["FACEGATE_WEBHOOK_TOKEN"]
    for ticket in tickets:
        request = urllib.request.Request(
            f"{site.stack.config.ingest_url}/v1/events",
            data=minio_body(site.settings.bucket, ticket.key),
            method="POST",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 200
    upload_ids = [t.upload_id for t in tickets] + [keys.parse_upload_key(intruder)[2]]
    events = {uid: decision(site, uid) for uid in upload_ids}
    for uid, event in events.items():
        # photographed more than the deadline before anyone could decide: never OPEN
        assert (event["decision"], event["reason"]) == ("DENY", "timeout"), uid
        stamps = event["stamps"]
        assert isinstance(stamps, dict)
        assert stamps["ingested"] - stamps["uploaded"] > DEADLINE_S  # age from the object
    time.sleep(2.0)  # let any duplicate task finish
    assert {uid: audit_count(site, uid) for uid in upload_ids} == dict.fromkeys(upload_ids, 1)


def test_an_unclaimed_object_never_opens(
    building: Site,
    photos: dict[str, bytes],
) -> None:
    """A resident's face written straight into the bucket at an identify door
    that lets every resident in: the object has no claim, the door stays shut."""
    site = building
    key = keys.upload_object_key("lobby", "cam1", keys.new_upload_id())
    site.objects.put(key, photos["obama3.jpg"], "image/jpeg")
    event = decision(site, keys.parse_upload_key(key)[2])
    assert (event["decision"], event["reason"], event["person"]) == ("DENY", "unclaimed", None)
    assert "encode_start" not in event["stamps"]  # type: ignore[operator]  # never decoded


def test_no_secret_in_any_log_of_the_pipeline(building: Site) -> None:
    """Every log file of the stack (ingest, encoder, matcher, SeaweedFS, Redis)
    after the runs above, including a webhook that failed while ingest was down."""
    site = building
    secrets_ = {k: v for k, v in site.env.items() if k in (
        "FACEGATE_S3_ACCESS_KEY", "FACEGATE_S3_SECRET_KEY", "FACEGATE_SIGNING_SECRET",
        "FACEGATE_WEBHOOK_TOKEN", "FACEGATE_CAMERA_TOKEN")}  # fmt: skip
    security = (site.stack.state_dir / "seaweedfs" / "security.toml").read_text()
    jwt_keys = re.findall(r'\[jwt[a-z_.]*\]\nkey = "([^"]+)"', security)
    secrets_.update({f"weed-{i}": v for i, v in enumerate(jwt_keys)})
    assert len(secrets_) == 9
    logs: list[Path] = sorted(p for p in site.stack.log_dir.glob("*.log") if p.is_file())
    assert {p.stem for p in logs} >= {"redis", "seaweedfs", "ingest", "encoder-1", "matcher-1"}
    for path in logs:
        text = path.read_text(errors="replace")
        assert [name for name, value in secrets_.items() if value in text] == [], path
