"""Ingest's state in memory: the fake of :mod:`facegate.adapters.redis_claims`.

Mixed into :class:`~facegate.adapters.memory_store.MemoryStore`: claims
(badge and approach bound to an object key, expiring), pending marks, the
reconciler's lease (taken when free, renewed and released only by its
holder) and cursor; the same contract tests as Redis.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from facegate.adapters.store import Claim
from facegate.core import keys


class MemoryIngestState:
    """The claim and reconciler part of MemoryStore."""

    _cond: threading.Condition
    _expiring: dict[str, tuple[Any, float]]
    _cursors: dict[str, str]

    def _check(self) -> None: ...  # provided by MemoryStore

    def _get(self, name: str) -> Any: ...

    def _put(self, name: str, value: Any, ttl_s: float) -> None: ...

    # --- claims ---------------------------------------------------------------------------

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
        claim = Claim(
            upload_id,
            key,
            keys.check_door(door),
            keys.check_camera(camera),
            None if badge is None else keys.check_person(badge),
            direct=direct,
            approach=None if approach is None else keys.check_upload_id(approach),
        )
        with self._cond:
            self._check()
            self._put(keys.claim_key(upload_id), claim, ttl_s)

    def get_claim(self, upload_id: str) -> Claim | None:
        with self._cond:
            self._check()
            claim: Claim | None = self._get(keys.claim_key(upload_id))
            return claim

    def mark_enqueued(self, upload_id: str, when: float) -> None:
        name = keys.claim_key(upload_id)
        with self._cond:
            self._check()
            claim = self._get(name)
            if claim is not None:
                self._expiring[name] = (replace(claim, enqueued_at=when), self._expiring[name][1])

    # --- reconciler state -------------------------------------------------------------------

    def mark_pending(self, upload_id: str, ttl_s: int) -> None:
        with self._cond:
            self._check()
            self._put(keys.pending_key(upload_id), True, ttl_s)

    def is_pending(self, upload_id: str) -> bool:
        with self._cond:
            self._check()
            return self._get(keys.pending_key(upload_id)) is not None

    def hold_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        with self._cond:
            self._check()
            current = self._get(name)
            if current is not None and current != holder:
                return False
            self._put(name, holder, ttl_s)
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._cond:
            self._check()
            if self._get(name) == holder:
                self._expiring.pop(name, None)

    def get_cursor(self, name: str) -> str:
        with self._cond:
            self._check()
            return str(self._cursors.get(name, ""))

    def set_cursor(self, name: str, value: str) -> None:
        with self._cond:
            self._check()
            self._cursors[name] = value


__all__ = ["MemoryIngestState"]
