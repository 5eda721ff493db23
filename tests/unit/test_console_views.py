"""The console's pure parts: forms, photo checks, log filtering and paging,
CSV, the audit record, the calibration figures."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facegate.adapters.redis_audit import AuditEntry
from facegate.core.audit import Action, AdminAction
from facegate.core.errors import BadMessageError
from facegate.core.policy import DoorMode, DoorPolicy
from services.console.calibrate import histogram, suggest
from services.console.forms import FormError, door_policy
from services.console.logview import LogFilter, query, to_csv
from services.console.photos import check_photo

pytestmark = pytest.mark.unit


def jpeg(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(out, "JPEG")
    return out.getvalue()


def test_photo_checks() -> None:
    ok = check_photo("me.png", jpeg(), 10_000)
    assert ok.problem is None and ok.name == "me.jpg"  # named by its real format
    assert check_photo("x.jpg", b"", 10_000).problem == "empty file"
    assert "not an image" in (check_photo("x.jpg", b"GIF? no, text", 10_000).problem or "")
    assert "too large" in (check_photo("x.jpg", jpeg(), 100).problem or "")
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    assert "GIF images are not accepted" in (check_photo("a.gif", gif.getvalue(), 10_000).problem
                                               or "")


def test_door_form_reads_and_validates() -> None:
    p = door_policy({"mode": "identify", "allowed": "ann, bob  cy", "threshold": "",
                     "margin": "0.2"}, "lobby", None)
    assert p.mode is DoorMode.IDENTIFY and p.allowed == {"ann", "bob", "cy"}
    assert p.threshold is None and p.margin == 0.2
    current = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"x"}), None, 0.15, 1e-4, 3)
    edited = door_policy({"mode": "verify", "allowed": "*", "threshold": "0.5"}, "lobby", current)
    assert edited.threshold == 0.5 and edited.allowed == {"*"}
    assert (edited.margin, edited.stranger_rate, edited.frames) == (0.15, 1e-4, 3)  # kept
    for bad in ({"mode": "open-sesame"}, {"threshold": "nan"}, {"threshold": "7"},
                {"allowed": "../etc"}, {"margin": "-1"}):
        with pytest.raises(FormError):
            door_policy(bad, "lobby", None)


def test_door_form_access_rules() -> None:
    form = {"mode": "identify", "allowed": "", "rules":
            "group staff: mon-fri 07:00-19:00\n\nperson dave: fri 22:00-02:00\ngroup guards\n"}
    p = door_policy(form, "lab", None)
    assert [str(r) for r in p.rules] == [
        "group staff: mon,tue,wed,thu,fri 07:00-19:00",
        "person dave: fri 22:00-02:00",
        "group guards: (any time)",
    ]
    # the edit form shows them back as lines: reading those gives the same rules
    again = "\n".join(f"{r.kind.value} {r.name}" + (f": {r.schedule}" if r.schedule else "")
                       for r in p.rules)
    assert door_policy({**form, "rules": again}, "lab", None).rules == p.rules
    # no rules field: kept; an empty one: cleared
    assert door_policy({"mode": "identify"}, "lab", p).rules == p.rules
    assert door_policy({"mode": "identify", "rules": ""}, "lab", p).rules == ()
    for bad in ("team staff", "group staff: someday 07:00-19:00", "person ../x", "group a b"):
        with pytest.raises(FormError, match="access rule line 1"):
            door_policy({"mode": "identify", "rules": bad}, "lab", None)


def _event(i: int, door: str, decision: str, person: str | None, distance: float) -> AuditEntry:
    ev: dict[str, Any] = {
        "door": door, "camera": "cam", "decision": decision,
        "reason": "granted" if decision == "OPEN" else "below_threshold",
        "person": person, "distance": distance, "upload_id": f"{i:032x}",
        "issued_at": 1000.0 + i, "stamps": {"uploaded": 999.5 + i}, "stream_id": f"{i}-0",
    }
    return AuditEntry(f"{(1000 + i) * 1000}-0", 1000.0 + i, ev)


class FakeStream:
    def __init__(self, entries: list[AuditEntry]) -> None:
        self.entries = sorted(entries, key=lambda e: int(e.stream_id.split("-")[0]))
        self.reads = 0

    def __call__(self, *, max_id: str, min_id: str, count: int) -> list[AuditEntry]:
        self.reads += 1

        def ms(e: AuditEntry) -> int:
            return int(e.stream_id.split("-")[0])

        out = []
        for e in reversed(self.entries):
            if max_id.startswith("("):
                if ms(e) >= int(max_id[1:].split("-")[0]):
                    continue
            elif max_id != "+" and ms(e) > int(max_id):
                continue
            if min_id != "-" and ms(e) < int(min_id):
                continue
            out.append(e)
        return out[:count]


def stream() -> FakeStream:
    entries = [_event(i, "front" if i % 2 else "lobby", "OPEN" if i % 3 else "DENY",
                      "ann" if i % 3 else None, 0.3 + i / 100) for i in range(1, 121)]
    entries.append(AuditEntry("1050000-1", 1050.0, action=AdminAction(
        "console:ann", Action.DOOR_SET, "front", 1050.0, {"mode": "verify"})))
    return FakeStream(entries)


def test_log_pages_cover_every_match_once() -> None:
    read = stream()
    flt = LogFilter(door="front")
    seen: list[str] = []
    cursor = None
    while True:
        page = query(read, flt, cursor=cursor, page_size=7, chunk=11)
        seen += [r["stream_id"] for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 61  # 60 front decisions + the admin record on front
    assert seen == sorted(seen, key=lambda s: (int(s.split("-")[0]), s), reverse=True)


def test_log_filters() -> None:
    rows = query(stream(), LogFilter(decision="DENY", door="lobby"), page_size=500).rows
    assert rows and all(r["decision"] == "DENY" and r["door"] == "lobby" for r in rows)
    admin = query(stream(), LogFilter(decision="admin"), page_size=500).rows
    assert [r["action"] for r in admin] == ["door_set"]
    ann = query(stream(), LogFilter(person="ann", reason="granted"), page_size=500).rows
    assert ann and all(r["person"] == "ann" for r in ann)
    window = query(stream(), LogFilter(since=1010.0, until=1019.0), page_size=500).rows
    assert {r["upload_id"] for r in window} == {f"{i:032x}" for i in range(10, 20)}
    assert window[0]["latency_ms"] == "500"
    assert window[0]["snapshot"].startswith("/snapshots/")


def test_csv_has_a_header_and_defuses_formulas() -> None:
    text = to_csv([{"kind": "admin", "detail": "=HYPERLINK(1)", "target": "x"}])
    header, line = text.strip().splitlines()
    assert header.startswith("stream_id,time_utc,kind")
    assert "'=HYPERLINK(1)" in line


def test_admin_action_round_trip_and_validation() -> None:
    a = AdminAction("console:ann", Action.THRESHOLD_SET, "lobby", 1234.5, {"threshold": "0.4"})
    assert AdminAction.from_fields(a.to_fields()) == a
    assert "threshold=0.4" in a.describe()
    with pytest.raises(BadMessageError):
        AdminAction.from_fields({"actor": "x", "action": "launch_missiles", "at": "1"})
    with pytest.raises(BadMessageError):
        AdminAction("", Action.ENROL, "bob", 1.0)


def test_histogram_and_suggestion() -> None:
    h = histogram([0.31, 0.33, 0.52], [0.71, 0.72, 5.0])
    assert sum(h.granted) == 3 and sum(h.denied) == 3 and h.denied[-1] == 1
    assert h.granted[6] == 2 and h.peak == 2
    rng = np.random.default_rng(0)
    people = {f"p{i}": rng.normal(size=(3, 128)).astype(np.float32) for i in range(20)}
    door = DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}))
    strict = suggest(door, people, 1e-5, default_threshold=0.6)
    loose = suggest(door, people, 1e-2, default_threshold=0.6)
    assert strict.threshold < loose.threshold
    assert (strict.people, strict.templates) == (20, 60)
    verify = suggest(DoorPolicy("front", DoorMode.VERIFY, frozenset({"p1"}), 0.55), people,
                     1e-3, default_threshold=0.6)
    assert verify.current == 0.55 and verify.threshold > strict.threshold
