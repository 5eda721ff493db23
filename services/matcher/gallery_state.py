"""The matcher's cached state: galleries, door policies, door keys, kept
current from the change stream instead of reloaded.

Every enrolment, revocation (erasure), door change (policy set or
deleted, key rotated) and group change (created, deleted, a member added or
removed) commits together with a change record naming the person, door or
group and the new gallery version
(:class:`facegate.adapters.store.GalleryStore`). Before each decision
:meth:`GalleryState.refresh` reads the version (one GET); when it moved, it
reads the records after the version it applied last and applies them: each
changed person is read once and put into (or taken out of) every model's
:class:`~facegate.core.live_gallery.LiveGallery`, O(their templates); each
changed door's cached policy and key version are dropped (read again when
used); a group change makes every calibrated threshold be recomputed (a
door's group rules may now admit other people). A full reload (every
template read) happens only at start (the first use of a model) and on a
gap: the next record trimmed away, records not consecutive, or the store's
version behind the applied one (a restored or emptied Redis).

Consistency: a decision uses galleries, policies and keys that include
every change committed before its :meth:`refresh` read the version, which
happens after its request was received; so a revocation committed before
an upload's request was read is never matched by it, and an enrolment
committed before is matched. A change committed while a decision runs may
or may not be seen by it. A person's templates may be newer than the
applied version (re-reading them is how a change is applied); applying a
record again is harmless (it re-reads the person's current state).

Decisions never wait for a change to be applied by another thread beyond
the lock around applying (milliseconds): searches take no lock
(:class:`~facegate.core.live_gallery.LiveGallery`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from facegate.adapters import metrics
from facegate.adapters.store import Change, ChangeKind, MatcherStore
from facegate.core.live_gallery import LiveGallery
from facegate.core.policy import DoorPolicy, allowed_template_total, door_threshold
from facegate.core.signing import DoorSigner
from services.matcher.settings import MatcherSettings

log = logging.getLogger(__name__)

CHANGE_BATCH = 1000
"""Change records read per round trip while catching up."""


class GalleryState:
    """One per matcher process (thread-safe). Counters for monitoring:
    :attr:`reloads`, :attr:`last_reload_s`, :attr:`applied_changes`,
    :attr:`applied_version`, :attr:`gallery_size`."""

    def __init__(self, settings: MatcherSettings, store: MatcherStore) -> None:
        self.settings = settings
        self.store = store
        self._lock = threading.Lock()
        """Guards the small caches (doors, key versions, signers, thresholds)."""
        self._apply_lock = threading.Lock()
        """Held while changes are applied or a gallery is (re)loaded; never while deciding."""
        self._applied = -1
        self._epoch = 0
        """Moves when a door change is applied: a door read before it is not cached."""
        self._galleries: dict[str, LiveGallery] = {}
        self._doors: dict[str, DoorPolicy | None] = {}
        self._key_versions: dict[str, int] = {}
        self._signers: dict[tuple[str, int], DoorSigner] = {}
        self._thresholds: dict[tuple[str, str], tuple[object, float]] = {}
        self._groups_epoch = 0
        """Moves when a group change is applied: who a door with group rules
        lets in (and so its calibrated threshold) may have changed."""
        self.reloads = 0
        """Full reads of a model's templates (its first load, and each reload on a gap)."""
        self.last_reload_s = 0.0
        self.applied_changes = 0
        """Change records applied incrementally."""

    @property
    def applied_version(self) -> int:
        """The gallery version the cached state includes (at least); -1 before the first."""
        return self._applied

    @property
    def gallery_size(self) -> int:
        """Templates held, over every model's gallery."""
        return sum(g.template_count for g in list(self._galleries.values()))

    def refresh(self) -> None:
        """Catch up with every change committed before this call (the
        consistency rule of the module docstring)."""
        version = self.store.gallery_version()
        if version == self._applied:
            return
        with self._apply_lock:
            if self._applied < 0:
                self._reload()
                return
            while True:
                read = self.store.gallery_changes(self._applied, limit=CHANGE_BATCH)
                if read.version == self._applied:
                    return  # another thread caught up past the version read above
                numbers = [c.version for c in read.changes]
                expected = list(range(self._applied + 1, self._applied + 1 + len(numbers)))
                if read.version < self._applied or not numbers or numbers != expected:
                    log.warning(
                        "gallery changes after version %d are missing (store at %d): "
                        "full reload",
                        self._applied,
                        read.version,
                    )
                    self._reload()
                    return
                self._apply(read.changes)
                if self._applied >= version:
                    return

    def _apply(self, changes: Sequence[Change]) -> None:
        """Apply change records (under ``_apply_lock``): re-read each changed
        person once and put or remove them; forget each changed door."""
        people = list(dict.fromkeys(c.name for c in changes if c.kind is ChangeKind.PERSON))
        doors = {c.name for c in changes if c.kind is ChangeKind.DOOR}
        groups = any(c.kind is ChangeKind.GROUP for c in changes)
        if people and self._galleries:
            stored = self.store.stored_people(people)
            for model_id, gallery in self._galleries.items():
                for name in people:
                    found = stored.get(name)
                    if (
                        found is not None
                        and found.model_id == model_id
                        and found.templates.shape[1] == gallery.dim
                    ):
                        gallery.put(name, found.templates)
                    else:
                        gallery.remove(name)
        if groups:
            with self._lock:
                self._groups_epoch += 1
        if doors:
            with self._lock:
                self._epoch += 1
                for door in doors:
                    self._doors.pop(door, None)
                    self._key_versions.pop(door, None)
        self._applied = changes[-1].version
        self.applied_changes += len(changes)
        if people:
            metrics.gallery_size(*self._size())
        log.info(
            "gallery version %d: applied %d change(s) (%d people, %d doors)",
            self._applied,
            len(changes),
            len(people),
            len(doors),
        )

    def _reload(self) -> None:
        """Read everything again (under ``_apply_lock``): at start, or on a gap."""
        started = time.perf_counter()
        floor = self.store.gallery_version()
        with self._lock:
            self._epoch += 1
            self._groups_epoch += 1
            self._doors.clear()
            self._key_versions.clear()
        models = list(self._galleries)
        for model_id in models:
            self._galleries[model_id] = self._load(model_id, self._galleries[model_id].dim)
        self._applied = floor  # every snapshot is at this version or newer
        if models:
            self.reloads += 1
            self.last_reload_s = time.perf_counter() - started
            log.info(
                "gallery version %s: full reload of %d model(s) in %.3fs",
                floor,
                len(models),
                self.last_reload_s,
            )
        else:
            log.info("gallery version %s: caches cleared", floor)

    def _size(self) -> tuple[int, int]:
        """People and templates held, over every model's gallery."""
        galleries = list(self._galleries.values())
        return sum(len(g) for g in galleries), sum(g.template_count for g in galleries)

    def _load(self, model_id: str, dim: int) -> LiveGallery:
        began = time.perf_counter()
        _, mapping = self.store.templates_snapshot(model_id)
        gallery = LiveGallery.from_mapping(mapping, dim=dim)
        people, templates = self._size()
        old = self._galleries.get(model_id)
        if old is not None:  # a reload replaces it
            people, templates = people - len(old), templates - old.template_count
        metrics.observe_gallery(
            people + len(gallery), templates + gallery.template_count,
            time.perf_counter() - began,
        )
        log.info(
            "gallery for %s: %d people, %d templates",
            model_id,
            len(gallery),
            gallery.template_count,
        )
        return gallery

    def gallery(self, model_id: str, dim: int) -> LiveGallery:
        """Everyone enrolled with ``model_id``, kept current by :meth:`_refresh`."""
        cached = self._galleries.get(model_id)
        if cached is not None:
            return cached
        with self._apply_lock:
            cached = self._galleries.get(model_id)
            if cached is None:
                started = time.perf_counter()
                # read at the applied version or later: later changes re-apply harmlessly
                cached = self._galleries[model_id] = self._load(model_id, dim)
                self.reloads += 1
                self.last_reload_s = time.perf_counter() - started
        return cached

    def door(self, door: str) -> DoorPolicy | None:
        with self._lock:
            if door in self._doors:
                return self._doors[door]
            epoch = self._epoch
        policy = self.store.get_door(
            door,
            default_threshold=self.settings.threshold,
            default_margin=self.settings.margin,
        )
        with self._lock:
            if epoch == self._epoch:  # no door change applied meanwhile
                self._doors[door] = policy
        return policy

    def threshold(self, policy: DoorPolicy, gallery: LiveGallery, model_id: str) -> float:
        """The door's threshold with this gallery as it is now (calibrated
        ones move with every enrolment and revocation: recomputed when the
        gallery or the policy changed, O(1) for a door open to everyone)."""
        key = (policy.door, model_id)
        with self._lock:
            stamp = (gallery.serial, gallery.changes, policy, self._groups_epoch)
            cached = self._thresholds.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        groups_of = self.store.groups_of
        value = door_threshold(
            policy, gallery, default_threshold=self.settings.threshold, groups_of=groups_of
        )
        if policy.calibrated and (cached is None or cached[1] != value):
            log.info(
                "door %s: threshold %.4f calibrated for %d templates, "
                "%d frame(s) per approach, %g strangers per approach",
                policy.door,
                value,
                allowed_template_total(policy, gallery, groups_of),
                policy.frames,
                policy.stranger_rate,
            )
        with self._lock:
            self._thresholds[key] = (stamp, value)
        return value

    def signer(self, door: str) -> DoorSigner:
        """The door's current private key (its version is cached like the
        policy: until the gallery version moves, which a rotation does)."""
        with self._lock:
            version = self._key_versions.get(door)
            epoch = self._epoch
        if version is None:
            version = self.store.door_key_version(door)
            with self._lock:
                if epoch == self._epoch:
                    self._key_versions[door] = version
        with self._lock:
            signer = self._signers.get((door, version))
        if signer is None:
            signer = DoorSigner.derive(
                self.settings.signing_secret.get_secret_value(), door, version
            )
            with self._lock:
                self._signers[(door, version)] = signer
        return signer


__all__ = ["CHANGE_BATCH", "GalleryState"]
