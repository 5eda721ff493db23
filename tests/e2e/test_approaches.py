"""Several frames per approach through the whole pipeline (real encoder,
real faces): the lock hears one OPEN for an approach whose frames include
the resident, one DENY when no frame passes, every frame decided and
audited; the door's threshold is calibrated for its gallery and frames; the
CLI sends a burst and lists what the door promises."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_site import Site

from facegate.clients.lock import DoorListener
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import DoorSigner

pytestmark = pytest.mark.e2e

WAIT_S = 60.0
WINDOW_S = 3.0  # FACEGATE_APPROACH_WINDOW_S of the e2e stack (the default)


@pytest.fixture(scope="module")
def atrium(site: Site, samples_dir: Path) -> Site:
    if "obama" not in site.store.people():
        site.admin.enroll("obama", [(n, (samples_dir / n).read_bytes())
                                    for n in ("obama.jpg", "obama2.jpg")])
    site.admin.set_door(DoorPolicy("atrium", DoorMode.IDENTIFY, frozenset({"*"}), frames=3))
    return site


def approach_events(
    site: Site, door: str, frames: list[bytes], ext: str = "jpg"
) -> tuple[list[DoorEvent], list[str]]:
    """Send ``frames`` as one approach; every event the door's stream holds
    for it once the first arrived and the window has passed again (so a
    second event would be there), each checked as the lock checks it
    (against the id of the stream entry that carries it)."""
    secret = site.settings.signing_secret.get_secret_value()
    key = DoorSigner.derive(secret, door, site.store.door_key_version(door)).public_key
    listener = DoorListener(site.redis, door, key)
    sent: dict[str, object] = {}

    def upload() -> None:
        burst = site.camera.burst(door, "cam1", frames, ext=ext)
        sent["approach"], sent["ids"] = burst.approach, list(burst.upload_ids)

    for item in listener.listen(timeout_s=WAIT_S, on_subscribed=upload):
        if item.event is not None and item.event.approach == sent.get("approach"):
            break
    else:
        pytest.fail(f"no event for approach {sent.get('approach')}:\n{site.log('matcher-1')}")
    time.sleep(WINDOW_S + 2.0)
    checker = DoorListener(site.redis, door, key)
    heard = []
    for sid, wire in site.store.events_since(door, count=1000):
        got = checker.check(wire, stream_id=sid)
        assert got.rejected in (None, "expired"), got.detail  # older events may have expired
        if got.event is not None and got.event.approach == sent["approach"]:
            assert got.event.stream_id == sid
            heard.append(got.event)
    ids = sent["ids"]
    assert isinstance(ids, list)
    return heard, ids


def test_one_open_for_an_approach_with_the_resident(atrium: Site, samples_dir: Path) -> None:
    from facegate.tools.samples import astronaut_path

    stranger = astronaut_path().read_bytes()
    resident = (samples_dir / "obama3.jpg").read_bytes()
    heard, ids = approach_events(atrium, "atrium", [stranger, resident, resident])
    assert [(e.decision, e.person) for e in heard] == [(Decision.OPEN, "obama")]
    assert heard[0].upload_id in ids[1:]
    for upload_id in ids:  # every frame decided once, and audited
        assert atrium.store.get_decision(upload_id) is not None
    audit = [json.loads(w)["event"] for _, w in atrium.store.read_log(None, count=200)]
    frames = [e["upload_id"] for e in audit if e.get("approach") == heard[0].approach]
    assert sorted(frames) == sorted(ids)


def test_one_deny_when_no_frame_passes(atrium: Site) -> None:
    from facegate.tools.demo import no_face_picture
    from facegate.tools.samples import astronaut_path

    heard, ids = approach_events(atrium, "atrium", [astronaut_path().read_bytes(),
                                                     no_face_picture()], ext="png")
    assert [(e.decision, e.reason) for e in heard] == [(Decision.DENY, Reason.UNKNOWN_PERSON)]
    assert heard[0].upload_id == ids[0]  # the frame that came closest: the face


def test_cli_burst_and_doors_list(
    atrium: Site, samples_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from facegate.tools.cli import main

    for name, value in atrium.env.items():
        monkeypatch.setenv(name, value)
    image = tmp_path / "me.jpg"
    image.write_bytes((samples_dir / "obama3.jpg").read_bytes())
    assert main(["snap", "atrium", str(image), "--frames", "2"]) == 0
    out = capsys.readouterr().out
    assert "OPEN" in out and "frame 1:" in out and "frame 2:" in out
    assert main(["doors", "list"]) == 0
    listing = capsys.readouterr().out
    assert "atrium" in listing and "calibrated for 0.1% strangers per approach" in listing
    assert "residents let in" in listing
