"""Administration through the pipeline: enrol, revoke, doors.

::

    admin = Admin(settings, store, objects, send_encode_request)
    admin.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice"}), 0.6))
    result = admin.enroll("alice", [("a1.jpg", data1), ("a2.jpg", data2)], doors=["front"])
    admin.revoke("alice")

Enrolment photos take the same road as door snapshots: stored in the bucket
under ``enroll/<person>/<upload_id>.<ext>``, encoded by an encoder worker
(``facegate.encode`` with ``kind=enroll``), whose answer comes back on
``facegate:reply:<upload_id>``. Every photo must show exactly one face, and
none may be nearer to another enrolled person than to the person's own
other photos (a likely mix-up, :mod:`facegate.core.enrolment`); when any
photo is refused nothing is enrolled and the stored photos are removed
again, so a person is never half enrolled. Revoking erases the person's
templates, the enrolment photos, the door snapshots whose decision named
the person, and the person's name from every door's allowed list.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from facegate.adapters.objectstore import ObjectStore
from facegate.adapters.replies import parse_reply
from facegate.adapters.store import Store
from facegate.clients.camera import CONTENT_TYPES
from facegate.core import keys
from facegate.core.access import AccessRule, RuleKind, with_rule, without
from facegate.core.audit import Action, AdminAction
from facegate.core.enrolment import likely_mixups
from facegate.core.errors import BadMessageError, EnrolmentError, NoAnswerError, UnknownDoorError
from facegate.core.messages import EncodeRequest, UploadKind
from facegate.core.policy import DoorPolicy
from facegate.core.schedule import Schedule
from facegate.runtime.settings import CommonSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoResult:
    """What the encoder found in one enrolment photo."""

    name: str
    upload_id: str
    faces: int
    problem: str | None = None
    quality: float | None = None


@dataclass(frozen=True)
class EnrolResult:
    person: str
    templates: list[str]
    photos: list[PhotoResult]
    doors: list[str]
    model_id: str
    total_templates: int = 0
    """The person's templates after this enrolment (earlier ones included)."""


@dataclass(frozen=True)
class RevokeResult:
    person: str
    was_enrolled: bool
    photos_deleted: int
    snapshots_deleted: int
    doors: list[str] = field(default_factory=list)


class PhotosRefusedError(EnrolmentError):
    """Enrolment refused: ``photos`` says what was wrong with each photo
    (``problem`` ``None``: that photo was fine); nothing was enrolled."""

    def __init__(self, message: str, photos: Sequence[PhotoResult]) -> None:
        super().__init__(message)
        self.photos = list(photos)


def door_detail(policy: DoorPolicy) -> dict[str, object]:
    """A door's settings as audit detail."""
    return {
        "mode": policy.mode.value,
        "allowed": ",".join(sorted(policy.allowed)) or "-",
        "threshold": "calibrated" if policy.threshold is None else policy.threshold,
        "margin": policy.margin,
    }


def _ext(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else "jpg"
    return ext if ext in CONTENT_TYPES else "jpg"


class Admin:
    """Enrolment and door administration (the CLI's library)."""

    def __init__(
        self,
        settings: CommonSettings,
        store: Store,
        objects: ObjectStore,
        send: Callable[[EncodeRequest], object],
        *,
        actor: str = "cli",
    ) -> None:
        self.settings = settings
        self.store = store
        self.objects = objects
        self.send = send
        self.actor = actor
        """Who the audit records name (``cli:USER``, ``console:NAME``)."""

    def audit(self, action: Action, target: str, **detail: object) -> None:
        """Record an administrative change in the audit stream."""
        self.store.record_admin(
            AdminAction(
                self.actor, action, target, time.time(),
                {k: str(v) for k, v in detail.items() if v is not None},
            )
        )

    # --- doors -----------------------------------------------------------------------

    def set_door(self, policy: DoorPolicy, *, action: Action = Action.DOOR_SET) -> None:
        self.store.set_door(policy)
        self.audit(action, policy.door, **door_detail(policy))

    def door(self, door: str) -> DoorPolicy:
        policy = self.store.get_door(keys.check_door(door))
        if policy is None:
            raise UnknownDoorError(f"door {door!r} is not configured (facegate doors add {door})")
        return policy

    def allow(self, door: str, people: Sequence[str]) -> DoorPolicy:
        policy = self.door(door)
        for person in people:
            keys.check_person(person)
        updated = replace(policy, allowed=policy.allowed | frozenset(people))
        self.store.set_door(updated)
        self.audit(Action.DOOR_ALLOW, door, people=",".join(sorted(people)))
        return updated

    def disallow(
        self, door: str, people: Sequence[str], groups: Sequence[str] = ()
    ) -> DoorPolicy:
        """Take people (from ``allowed`` and their rules) and groups off a door."""
        policy = self.door(door)
        rules = policy.rules
        for person in people:
            rules = without(rules, RuleKind.PERSON, person)
        for group in groups:
            rules = without(rules, RuleKind.GROUP, group)
        updated = replace(policy, allowed=policy.allowed - frozenset(people), rules=rules)
        self.store.set_door(updated)
        self.audit(
            Action.DOOR_DISALLOW,
            door,
            people=",".join(sorted(people)) or None,
            groups=",".join(sorted(groups)) or None,
        )
        return updated

    def allow_rule(
        self, door: str, kind: RuleKind, name: str, schedule: str | None = None
    ) -> DoorPolicy:
        """Let a person or a group in at a door, at any time (``schedule``
        ``None``) or within weekly windows (``'mon-fri 07:00-19:00'``, see
        :mod:`facegate.core.schedule`). Replaces what the door said about
        them before: a person with a schedule leaves ``allowed``; a person
        without one goes (back) to ``allowed``."""
        policy = self.door(door)
        when = None if schedule is None else Schedule.parse(schedule)
        rule = AccessRule(RuleKind(kind), name, when)
        if rule.kind is RuleKind.GROUP:
            if name not in self.store.list_groups():
                raise BadMessageError(f"no group {name!r} (facegate groups add {name})")
            updated = replace(policy, rules=with_rule(policy.rules, rule))
        elif when is None:
            rules = without(policy.rules, RuleKind.PERSON, name)
            updated = replace(policy, allowed=policy.allowed | {name}, rules=rules)
        else:
            updated = replace(
                policy, allowed=policy.allowed - {name}, rules=with_rule(policy.rules, rule)
            )
        self.store.set_door(updated)
        self.audit(Action.DOOR_ALLOW, door, **{rule.kind.value: name}, schedule=schedule)
        return updated

    def remove_door(self, door: str) -> bool:
        removed = bool(self.store.delete_door(keys.check_door(door)))
        if removed:
            self.audit(Action.DOOR_REMOVE, door)
        return removed

    # --- enrolment -----------------------------------------------------------------------

    def enroll(
        self,
        person: str,
        photos: Sequence[tuple[str, bytes]],
        *,
        doors: Sequence[str] = (),
        timeout_s: float = 120.0,
    ) -> EnrolResult:
        """Enrol ``person`` from ``(name, bytes)`` photos; all or nothing."""
        keys.check_person(person)
        if not photos:
            raise EnrolmentError("no photos given")
        policies = [self.door(d) for d in doors]  # unknown doors fail before any upload
        sent: list[tuple[str, str, str]] = []  # (name, upload_id, key)
        try:
            for name, data in photos:
                upload_id = keys.new_upload_id()
                ext = _ext(name)
                key = keys.enroll_object_key(person, upload_id, ext)
                self.objects.put(key, data, CONTENT_TYPES[ext])
                self.send(
                    EncodeRequest(
                        upload_id=upload_id,
                        kind=UploadKind.ENROLL,
                        bucket=self.settings.bucket,
                        key=key,
                        person=person,
                        stamps={"uploaded": time.time()},
                    )
                )
                sent.append((name, upload_id, key))
            results, encodings, model_id = self._collect(sent, timeout_s)
        except BaseException:
            self._discard(sent)
            raise
        refused = [r for r in results if r.problem is not None]
        if refused:
            self._discard(sent)
            lines = "; ".join(f"{r.name}: {r.problem}" for r in refused)
            self.audit(Action.ENROL_REFUSED, person, photos=len(photos), why=lines)
            raise PhotosRefusedError(f"{person} not enrolled: {lines}", results)
        _, enrolled = self.store.templates_snapshot(model_id)
        mixups = likely_mixups(person, np.stack(encodings), enrolled)
        if mixups:
            self._discard(sent)
            problems = {m.index: m.describe(results[m.index].name, person) for m in mixups}
            lines = "; ".join(problems.values())
            self.audit(Action.ENROL_REFUSED, person, photos=len(photos), why=lines)
            marked = [
                replace(r, problem=problems[i]) if i in problems else r
                for i, r in enumerate(results)
            ]
            raise PhotosRefusedError(f"{person} not enrolled: {lines}", marked)
        templates = self.store.add_templates(person, np.stack(encodings), model_id)
        for policy in policies:
            self.store.set_door(replace(policy, allowed=policy.allowed | {person}))
        total = len(templates) + (len(enrolled[person]) if person in enrolled else 0)
        self.audit(
            Action.ENROL, person, templates=len(templates), total=total,
            doors=",".join(p.door for p in policies) or None,
        )
        log.info("enrolled %s: %d templates (%d in all)", person, len(templates), total)
        return EnrolResult(
            person, templates, results, [p.door for p in policies], model_id, total
        )

    def _collect(
        self, sent: list[tuple[str, str, str]], timeout_s: float
    ) -> tuple[list[PhotoResult], list[np.ndarray[Any, Any]], str]:
        """Wait for the encoder's reply to every photo."""
        deadline = time.monotonic() + timeout_s
        results: list[PhotoResult] = []
        encodings: list[np.ndarray[Any, Any]] = []
        models: set[str] = set()
        for name, upload_id, _ in sent:
            left = deadline - time.monotonic()
            raw = self.store.wait_reply(upload_id, max(left, 0.1))
            if raw is None:
                raise NoAnswerError(
                    f"no encoder answered within {timeout_s:.0f} s "
                    "(is an encoder worker running? facegate stack status)"
                )
            reply = parse_reply(raw)
            problem = None
            if reply.error is not None:
                problem = f"{reply.error.replace('_', ' ')} ({reply.detail})"
            elif reply.faces == 0:
                problem = "no face found"
            elif reply.faces > 1:
                problem = f"{reply.faces} faces found; an enrolment photo must show one"
            else:
                encodings.append(reply.encodings[0])
                models.add(reply.model_id)
            quality = reply.qualities[0] if reply.faces == 1 else None
            results.append(PhotoResult(name, upload_id, reply.faces, problem, quality))
        if len(models) > 1:
            raise EnrolmentError(f"photos were encoded by different models: {sorted(models)}")
        return results, encodings, (models.pop() if models else "")

    def _discard(self, sent: list[tuple[str, str, str]]) -> None:
        for _, _, key in sent:
            try:
                self.objects.delete(key)
            except Exception:  # best effort: the photo is orphaned, not enrolled
                log.warning("could not delete refused enrolment photo %s", key)

    # --- revocation ------------------------------------------------------------------------

    def revoke(self, person: str) -> RevokeResult:
        """Erase ``person`` everywhere (templates, group memberships, photos,
        snapshots, doors' allowed lists and rules)."""
        keys.check_person(person)
        was = self.store.remove_person(person)
        photos = self.objects.delete_prefix(f"{keys.ENROLL_PREFIX}{person}/")
        snapshots = 0
        for upload_id, door, camera in self._snapshots_of(person):
            snapshots += self.objects.delete_prefix(
                f"{keys.UPLOADS_PREFIX}{door}/{camera}/{upload_id}."
            )
        doors = []
        for door in self.store.list_doors():
            policy = self.store.get_door(door)
            rules = () if policy is None else without(policy.rules, RuleKind.PERSON, person)
            if policy is not None and (person in policy.allowed or rules != policy.rules):
                self.store.set_door(replace(policy, allowed=policy.allowed - {person}, rules=rules))
                doors.append(door)
        if was or photos:
            self.audit(
                Action.REVOKE, person, photos=photos, snapshots=snapshots,
                doors=",".join(doors) or None,
            )
        return RevokeResult(person, was, photos, snapshots, doors)

    def _snapshots_of(self, person: str, limit: int = 100_000) -> list[tuple[str, str, str]]:
        """``(upload_id, door, camera)`` of decisions that named ``person``."""
        out = []
        for _, wire in self.store.read_log(None, count=limit):
            try:
                event: Any = json.loads(wire)["event"]
            except (ValueError, KeyError, TypeError):
                continue
            if event.get("person") == person and event.get("camera"):
                try:
                    out.append(
                        (
                            keys.check_upload_id(str(event["upload_id"])),
                            keys.check_door(str(event["door"])),
                            keys.check_camera(str(event["camera"])),
                        )
                    )
                except (BadMessageError, KeyError):
                    continue
        return out


__all__ = [
    "Admin",
    "EnrolResult",
    "NoAnswerError",
    "PhotoResult",
    "PhotosRefusedError",
    "RevokeResult",
    "door_detail",
]
