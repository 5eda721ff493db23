"""The demo's door chapters (``python -m facegate.tools.demo``): the residents
enrolled (a mix-up refused, what one more photo buys), the lobby's threshold
at building scale, and approaches of several frames, of which the lock
hears one event each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PublicKey = Callable[[str], str]
"""``public_key(door) -> hex``: the door's current Ed25519 public key."""


def enrol_story(admin: Any, photos: dict[str, bytes]) -> None:
    """The residents, after a mix-up refused with its reason."""
    from facegate.core.errors import EnrolmentError
    from facegate.tools.cli_report import enrol_advice

    for person, names in (("obama", ["obama.jpg", "obama2.jpg"]), ("biden", ["biden.jpg"])):
        result = admin.enroll(person, [(n, photos[n]) for n in names], doors=["front"])
        print(f"{person}: {len(result.templates)} template(s) from {', '.join(names)}; "
              f"allowed at {', '.join(result.doors)}")
    try:
        admin.enroll("hopper", [(n, photos[n]) for n in ("grace_hopper.jpg", "obama3.jpg")])
        print("hopper with a photo of obama: ENROLLED (bad!)")
    except EnrolmentError as exc:
        print(f"hopper with a photo of obama mixed in: refused: {exc}")
    result = admin.enroll("hopper", [("grace_hopper.jpg", photos["grace_hopper.jpg"])])
    print(f"hopper: {len(result.templates)} template(s) from grace_hopper.jpg; "
          f"{result.total_templates} photo(s) in all")
    for line in enrol_advice(admin.store, "hopper", {}):
        print(line)


def building_scale() -> None:
    """The lobby's threshold if the building had more residents (engine table)."""
    from facegate.core.calibration import default_model, identify_threshold

    model = default_model()
    print("\n   the same lobby at building scale (facegate calibrate --people P --templates 2 "
          "--frames 3):")
    for people in (10, 100, 1000):
        t = identify_threshold(2, people=people, frames=3)
        print(f"   {people:>5} residents: threshold {t:.3f}, residents let in about "
              f"{100 * model.resident_rate(t, 2):.0f}% per frame")


def approach_story(
    client: Any, camera: Any, public_key: PublicKey, photos: dict[str, bytes], frames: list[str]
) -> tuple[str, str, str | None]:
    """Send ``frames`` as one approach at lobby: ``(decision, reason, audit
    wire of a frame that did not open)`` of the one event the lock hears."""
    from facegate.clients.lock import DoorListener

    listener = DoorListener(client, "lobby", public_key("lobby"))
    listener.subscribe()  # returns once Redis confirmed: nothing recorded later is missed
    started = time.monotonic()
    burst = camera.burst("lobby", "cam1", [photos[f] for f in frames])
    try:
        for item in listener.events(timeout_s=60.0):
            event = item.event
            if event is None or event.approach != burst.approach:
                continue
            ms = 1000 * (time.monotonic() - started)
            d = "-" if event.distance is None else f"{event.distance:.3f}"
            print(f"   {event.decision.value:<4} {event.reason.value:<16} person="
                  f"{event.person or '-':<8} d={d}  {len(frames)} frames sent -> one event "
                  f"{ms:.0f} ms after the first upload, stream id {event.stream_id}")
            return event.decision.value, event.reason.value, _audit_only(client, burst, event)
    finally:
        listener.close()
    return "none", "no event", None


def _audit_only(client: Any, burst: Any, heard: Any, timeout_s: float = 20.0) -> str | None:
    """A frame's decision record that is not the door event (signed, no
    stream id): an OPEN one when there is (a frame after the approach's
    OPEN), once every frame is decided."""
    import json

    from facegate.core import keys

    names = [keys.decision_key(u) for u in burst.upload_ids if u != heard.upload_id]
    deadline = time.monotonic() + timeout_s
    wires = client.mget(names)
    while None in wires and time.monotonic() < deadline:
        time.sleep(0.1)
        wires = client.mget(names)
    found = sorted((w.decode() for w in wires if w is not None),
                   key=lambda w: json.loads(w)["event"]["decision"] != "OPEN")
    return found[0] if found else None


def approaches_story(
    client: Any, camera: Any, public_key: PublicKey, photos: dict[str, bytes]
) -> tuple[bool, str | None]:
    """Two approaches at the lobby: ``(as expected, an audit-only frame)``."""
    ok = True
    audit_frame = None
    for title, frames, expect in (
        ("stranger, then the resident twice", ["astronaut.png", "obama3.jpg", "obama3.jpg"],
         ("OPEN", "granted")),
        ("the stranger, twice (DENY when the window closes)", ["astronaut.png", "astronaut.png"],
         ("DENY", "unknown_person")),
    ):
        decision, reason, audit = approach_story(client, camera, public_key, photos, frames)
        audit_frame = audit_frame or audit
        mark = "ok" if (decision, reason) == expect else f"UNEXPECTED (wanted {' '.join(expect)})"
        print(f"-- {title}: {decision} {reason}  [{mark}]")
        ok &= (decision, reason) == expect
    print("   (every frame has its decision in the audit log, signed without a stream id:"
          " only the approach's one event is a door event)")
    return ok, audit_frame


__all__ = ["approach_story", "approaches_story", "building_scale", "enrol_story"]
