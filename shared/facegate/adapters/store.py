"""What facegate keeps in its state store, as small interfaces.

Two implementations: :class:`~facegate.adapters.redis_store.RedisStore`
(production, real Redis) and :class:`~facegate.adapters.memory_store.MemoryStore`
(an in-memory fake with the same behaviour, for unit tests of the services).
The contract tests in ``tests/store_contract.py`` run against both.

Each service depends only on the part it uses::

    ProbeStore      encoder writes, matcher reads the faces of an upload
    GalleryStore    people and their templates, with a version counter
    DoorStore       door policies
    GroupStore      access groups and their members
    ClaimStore      the badge bound to an upload's object key (ingest)
    ReconcileStore  pending marks, the reconciler's lease and cursor (ingest)
    DecisionStore   the exactly-once decision, the door and audit streams
    ApproachStore   frames of one approach: at most one OPEN, one DENY at the window's end
    ReplyStore      enrolment results for the waiting administrator
    AuditStore      administrative changes, in the audit stream (who, what, when)

How a door event gets its stream id and signature, the same for every store
and every kind of record: :mod:`facegate.adapters.recording` (its names are
re-exported here).

Errors: an unreachable store raises
:class:`~facegate.core.errors.RedisUnavailableError` (transient); malformed
stored data raises :class:`~facegate.core.errors.BadMessageError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from facegate.adapters.admin_stores import AuditStore, GroupStore
from facegate.adapters.gallery_changes import (
    DEFAULT_CHANGES_MAXLEN,
    Change,
    ChangeKind,
    GalleryChanges,
    StoredPerson,
)
from facegate.adapters.recording import (
    RECORD_ATTEMPTS,
    FrameRecorded,
    FrameStatus,
    Recorded,
    Signer,
    record_frame_signed,
    record_signed,
    stream_id_after,
)
from facegate.core.errors import BadMessageError
from facegate.core.messages import DoorEvent
from facegate.core.policy import DoorPolicy

F32 = npt.NDArray[np.float32]

DEFAULT_DECISION_TTL_S: Final = 86_400
"""How long the exactly-once gate of an upload lives (far beyond any redelivery)."""

StreamEntry = tuple[str, bytes]
"""``(stream id, signed wire event)``."""


@dataclass(frozen=True)
class Probe:
    """The encodings an encoder stored for one upload."""

    model_id: str
    encodings: F32
    """``(faces, dim)``; ``(0, dim)`` when no face was found."""
    boxes: tuple[dict[str, Any], ...] = ()

    @property
    def faces(self) -> int:
        return int(self.encodings.shape[0])


@dataclass(frozen=True)
class Claim:
    """The badge a camera claimed for an upload, bound to its object key."""

    upload_id: str
    key: str
    door: str
    camera: str
    badge: str | None
    direct: bool = False
    """Made by ingest's direct upload, which enqueues the object itself."""
    enqueued_at: float | None = None
    """When the upload was sent to the encoder (``None``: not yet)."""
    approach: str | None = None
    """The approach (several frames of one passage) the upload belongs to."""


@dataclass(frozen=True)
class ApproachState:
    """An approach whose window has ended without an OPEN (to be closed)."""

    key: str
    door: str
    camera: str
    approach: str
    window_end: float
    frames: int
    upload_id: str
    """The frame the closing DENY names: the closest DENY frame, else the latest."""
    reason: str | None
    person: str | None
    distance: float | None


def as_rows(encodings: npt.ArrayLike, what: str) -> F32:
    """``(k, d)`` finite float32 rows (a single vector becomes one row)."""
    arr = np.asarray(encodings, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{what}: want a (k, d) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.dtype("<f4"))


def probe_rows(encodings: npt.ArrayLike, dim: int | None) -> F32:
    """The rows of a probe; ``k`` may be 0, then ``dim`` must be known."""
    arr = np.asarray(encodings, dtype=np.float32)
    if arr.size == 0:
        if dim is None and arr.ndim == 2:
            dim = int(arr.shape[1])
        if not dim:
            raise ValueError("an empty probe needs its dimension (dim=)")
        return np.zeros((0, dim), dtype=np.dtype("<f4"))
    return as_rows(arr, "probe")


def check_same_model(
    person: str, stored_model: str | None, stored_dim: int | None, model_id: str, dim: int
) -> None:
    """A person's templates must all come from one model and dimension."""
    if stored_model is not None and (stored_model != model_id or stored_dim != dim):
        raise BadMessageError(
            f"{person} has templates of model {stored_model!r} (dim {stored_dim}); "
            f"refusing {model_id!r} (dim {dim}): revoke and re-enrol"
        )


class ProbeStore(Protocol):
    def put_probe(
        self,
        upload_id: str,
        encodings: npt.ArrayLike,
        model_id: str,
        *,
        ttl_s: int,
        boxes: Sequence[dict[str, Any]] | None = None,
        dim: int | None = None,
    ) -> None:
        """Store the faces found in an upload, replacing an earlier probe."""

    def get_probe(self, upload_id: str) -> Probe | None:
        """The stored probe, ``None`` when there is none (never written, expired)."""

    def delete_probe(self, upload_id: str) -> None: ...


class GalleryStore(Protocol):
    """Each write appends its change record (:class:`Change`, the new
    version) atomically with it: no write without a record, no gaps. The
    record stream is capped (about ``DEFAULT_CHANGES_MAXLEN``)."""

    def gallery_version(self) -> int:
        """A counter that moves on every enrol, revoke and door change."""

    def gallery_changes(self, after: int, limit: int = 1000) -> GalleryChanges:
        """The version and the records after ``after`` (oldest first, at
        most ``limit``). A reader whose next record is missing (trimmed, or
        the version behind ``after``) must reload everything."""

    def stored_people(self, people: Sequence[str]) -> dict[str, StoredPerson | None]:
        """Each one's current templates (``None``: not enrolled)."""

    def add_templates(self, person: str, encodings: npt.ArrayLike, model_id: str) -> list[str]:
        """Add templates ``(k, d)``; the new template ids."""

    def remove_person(self, person: str) -> bool:
        """Erase every template; ``False`` when the person was not enrolled."""

    def people(self) -> list[str]: ...

    def templates_snapshot(self, model_id: str | None = None) -> tuple[int, dict[str, F32]]:
        """``(version, {person: templates})`` consistent with ``version``."""


class DoorStore(Protocol):
    def set_door(self, policy: DoorPolicy) -> None:
        """Create or replace a door's policy (its key version is kept)."""

    def get_door(
        self, door: str, *, default_threshold: float = 0.6, default_margin: float = 0.0
    ) -> DoorPolicy | None: ...

    def list_doors(self) -> list[str]: ...

    def delete_door(self, door: str) -> bool: ...

    def door_key_version(self, door: str) -> int:
        """The version of the door's signing key (1 until it is rotated)."""

    def rotate_door_key(self, door: str) -> int:
        """Move the door to a new signing key; the new version. A door change
        record: matchers sign with the new key from their next upload."""


class ClaimStore(Protocol):
    def ping(self) -> bool: ...

    def close(self) -> None: ...

    def put_claim(
        self,
        upload_id: str,
        *,
        key: str,
        door: str,
        camera: str,
        badge: str | None,
        ttl_s: int,
        direct: bool = False,
        approach: str | None = None,
    ) -> None:
        """Bind a badge (or none) and the approach (or none) to the object
        key of one upload."""

    def get_claim(self, upload_id: str) -> Claim | None: ...

    def mark_enqueued(self, upload_id: str, when: float) -> None:
        """Note that the upload was sent to the encoder (only while its claim exists)."""


class ReconcileStore(Protocol):
    def mark_pending(self, upload_id: str, ttl_s: int) -> None:
        """Note that the upload was sent on and its decision is awaited."""

    def is_pending(self, upload_id: str) -> bool: ...

    def hold_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the lease ``name`` for ``holder`` (or renew it when ``holder``
        has it); ``False`` while another holder has it."""

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, only if ``holder`` has it."""

    def get_cursor(self, name: str) -> str: ...

    def set_cursor(self, name: str, value: str) -> None: ...


class DecisionStore(Protocol):
    def record_decision(self, event: DoorEvent, sign: Signer) -> Recorded | None:
        """Record, stream and publish once per upload (:func:`record_signed`:
        the event is signed with its stream id); ``None`` when already decided."""

    def get_decision(self, upload_id: str) -> bytes | None: ...

    def read_log(self, door: str | None = None, count: int = 20) -> list[StreamEntry]:
        """The newest ``count`` events (one door, or all doors), newest first."""

    def events_since(self, door: str, last_id: str = "0-0", count: int = 100) -> list[StreamEntry]:
        """A door's events after ``last_id``, oldest first."""


class ApproachStore(Protocol):
    def record_frame(
        self, event: DoorEvent, sign: Signer, *, window_end: float, now: float, max_frames: int
    ) -> FrameRecorded:
        """Record one frame's decision (exactly once per upload, always in
        the audit stream: :func:`record_frame_signed`). It is a door event
        (signed with its stream id, in the door's stream and published) only
        when it is the first OPEN of an approach still open (before
        ``window_end``, within ``max_frames``); any other frame is recorded
        as its audit wire (signed, no stream id: no lock accepts it).
        Otherwise the approach is due for closing at ``window_end`` (the
        earliest any of its frames proposed)."""

    def due_approaches(self, now: float, limit: int = 100) -> list[ApproachState]:
        """Approaches whose window ended by ``now`` without a door event."""

    def record_approach_close(self, event: DoorEvent, sign: Signer, key: str) -> Recorded | None:
        """Record the closing DENY of approach ``key`` as a door event, once
        (:func:`record_signed`: signed with its stream id); ``None`` when
        the approach already had its door event (another matcher closed it)."""


class ReplyStore(Protocol):
    def push_reply(self, upload_id: str, payload: bytes | str, ttl_s: int = 300) -> None: ...

    def wait_reply(self, upload_id: str, timeout_s: float) -> bytes | None: ...


class MatcherStore(
    ProbeStore, GalleryStore, DoorStore, GroupStore, DecisionStore, ApproachStore, Protocol
):
    """What the matcher reads and writes."""


class IngestStore(ClaimStore, ReconcileStore, Protocol):
    """What ingest reads and writes: claims, pending marks, the reconciler's
    state; whether a door exists and whether an upload was decided."""

    def get_door(
        self, door: str, *, default_threshold: float = 0.6, default_margin: float = 0.0
    ) -> DoorPolicy | None: ...

    def get_decision(self, upload_id: str) -> bytes | None: ...


class EncoderStore(ProbeStore, ReplyStore, Protocol):
    """What the encoder writes."""


class Store(
    ProbeStore,
    GalleryStore,
    DoorStore,
    GroupStore,
    ClaimStore,
    ReconcileStore,
    DecisionStore,
    ApproachStore,
    ReplyStore,
    AuditStore,
    Protocol,
):
    """Everything (what the administrator and the tools use)."""


__all__ = [
    "DEFAULT_CHANGES_MAXLEN",
    "DEFAULT_DECISION_TTL_S",
    "RECORD_ATTEMPTS",
    "ApproachState",
    "ApproachStore",
    "AuditStore",
    "Change",
    "ChangeKind",
    "Claim",
    "ClaimStore",
    "DecisionStore",
    "DoorStore",
    "EncoderStore",
    "FrameRecorded",
    "FrameStatus",
    "GalleryChanges",
    "GalleryStore",
    "GroupStore",
    "IngestStore",
    "MatcherStore",
    "Probe",
    "ProbeStore",
    "ReconcileStore",
    "Recorded",
    "ReplyStore",
    "Signer",
    "Store",
    "StoredPerson",
    "StreamEntry",
    "as_rows",
    "check_same_model",
    "probe_rows",
    "record_frame_signed",
    "record_signed",
    "stream_id_after",
]
