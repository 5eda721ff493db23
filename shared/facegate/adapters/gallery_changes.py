"""The gallery change stream's records (see
:class:`facegate.adapters.store.GalleryStore`, which re-exports these names):
every enrolment, revocation, door change and group change commits one
:class:`Change` with the gallery version it moved to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

DEFAULT_CHANGES_MAXLEN: Final = 10_000  # change records kept (about); further behind: reload


class ChangeKind(StrEnum):
    """``person``: enrolled or revoked (erased); ``door``: policy set or
    deleted, signing key rotated; ``group``: created, deleted, a member
    added or removed (name: the group; a revoked person's memberships
    dropped: the person)."""

    PERSON = "person"
    DOOR = "door"
    GROUP = "group"


@dataclass(frozen=True)
class Change:
    """One change record: the write that moved the gallery version to ``version``."""

    version: int
    kind: ChangeKind
    name: str


@dataclass(frozen=True)
class GalleryChanges:
    """What :meth:`GalleryStore.gallery_changes` read (in one transaction):
    the version then, and the records after the asked one, oldest first."""

    version: int
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class StoredPerson:
    """One person's templates as stored (all of one model)."""

    model_id: str
    templates: F32


__all__ = ["DEFAULT_CHANGES_MAXLEN", "Change", "ChangeKind", "GalleryChanges", "StoredPerson"]
