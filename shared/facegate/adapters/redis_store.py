"""The Redis implementation of :mod:`facegate.adapters.store`.

Every key name comes from :mod:`facegate.core.keys`. Every redis-py error that
crosses this class becomes :class:`~facegate.core.errors.RedisUnavailableError`
(``raise ... from exc``), a transient error: the Celery task retries.
Malformed data found in Redis raises
:class:`~facegate.core.errors.BadMessageError`.

Encodings are stored as raw little-endian float32 bytes together with the
``model`` id, the dimension ``dim`` and the storage format ``version``, so a
reader refuses vectors of another model or shape instead of comparing them.

Recording a decision is one Lua script (:meth:`RedisStore.record_decision`):
when the upload has no decision yet, ``XADD`` to the door's stream at the
stream id the event was signed with, then ``SET`` the decision, ``XADD`` to
the audit stream (both streams capped with ``MAXLEN ~``) and ``PUBLISH`` on
the door's channel. Redis runs a script atomically, so a redelivered task,
or two workers racing on the same upload, produce exactly one decision, one
stream entry per stream and one publish. When another decision took the
stream id first, the script answers the stream's last id and the event is
signed again above it (:mod:`facegate.adapters.recording`). The frames of an
approach and an approach's closing DENY are recorded the same way, by the
scripts of :mod:`facegate.adapters.redis_approaches`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy.typing as npt
import redis

from facegate.adapters.redis_approaches import RedisApproaches
from facegate.adapters.redis_audit import RedisAudit
from facegate.adapters.redis_claims import RedisIngestState
from facegate.adapters.redis_codec import (
    FORMAT_VERSION,
    RECORD_LUA,
    ROTATE_KEY_LUA,
    decode_probe,
    translated,
)
from facegate.adapters.redis_events import RedisDoorEvents
from facegate.adapters.redis_gallery import RedisGallery
from facegate.adapters.redis_groups import RedisGroups
from facegate.adapters.store import (
    DEFAULT_CHANGES_MAXLEN,
    DEFAULT_DECISION_TTL_S,
    Claim,
    Probe,
    probe_rows,
)
from facegate.core import keys

log = logging.getLogger(__name__)


class RedisStore(
    RedisIngestState, RedisGallery, RedisDoorEvents, RedisApproaches, RedisGroups, RedisAudit
):
    """All of facegate's Redis state, behind one small interface (the
    decisions, streams and key versions are :class:`RedisDoorEvents`, the
    approaches' part is in :mod:`facegate.adapters.redis_approaches`;
    claims, pending marks and the reconciler's state are
    :class:`~facegate.adapters.redis_claims.RedisIngestState`; people,
    doors and the change stream are
    :class:`~facegate.adapters.redis_gallery.RedisGallery`).

    ``client`` is a ``redis.Redis`` (bytes responses, the default). Nothing
    connects until the first call.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream_maxlen: int = 10_000,
        decision_ttl_s: int = DEFAULT_DECISION_TTL_S,
        changes_maxlen: int = DEFAULT_CHANGES_MAXLEN,
    ) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisStore needs a client with bytes replies (decode_responses off)")
        self.client = client
        self.stream_maxlen = stream_maxlen
        self.decision_ttl_s = decision_ttl_s
        self.changes_maxlen = changes_maxlen
        self._record = client.register_script(RECORD_LUA)
        self._rotate_key = client.register_script(ROTATE_KEY_LUA)
        self._register_ingest_scripts()
        self._register_gallery_scripts()
        self._register_group_scripts()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """A store on a fresh client for ``url`` (short socket timeouts)."""
        client = redis.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        return cls(client, **kwargs)

    def close(self) -> None:
        self.client.close()

    def ping(self) -> bool:
        with translated("PING"):
            return bool(self.client.ping())

    # --- probes -------------------------------------------------------------

    def remove_person(self, person: str) -> bool:
        """Revoke ``person``: every group membership, then every template
        (:meth:`RedisGallery.remove_person`); ``False`` when not enrolled."""
        self._drop_memberships(person)
        return RedisGallery.remove_person(self, person)

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
        """Store the faces found in an upload (``(k, d)``; ``k`` may be 0,
        then give ``dim``). Replaces an earlier probe of the same upload."""
        rows = probe_rows(encodings, dim)
        if boxes is not None and len(boxes) != rows.shape[0]:
            raise ValueError("one box per face")
        key = keys.probe_key(upload_id)
        mapping: dict[str, bytes | str] = {
            "model": model_id,
            "dim": str(rows.shape[1]),
            "version": FORMAT_VERSION,
            "faces": str(rows.shape[0]),
        }
        for i, row in enumerate(rows):
            mapping[f"enc:{i}"] = row.tobytes()
            if boxes is not None:
                mapping[f"box:{i}"] = json.dumps(boxes[i])
        with translated("put_probe"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key, ttl_s)
            pipe.execute()

    def get_probe(self, upload_id: str) -> Probe | None:
        """The stored probe, or ``None`` when there is none (expired)."""
        key = keys.probe_key(upload_id)
        with translated("get_probe"):
            raw: dict[bytes, bytes] = self.client.hgetall(key)  # type: ignore[assignment]
        if not raw:
            return None
        return decode_probe(key, raw)

    def delete_probe(self, upload_id: str) -> None:
        with translated("delete_probe"):
            self.client.delete(keys.probe_key(upload_id))

    # --- enrolment replies ------------------------------------------------------------

    def push_reply(self, upload_id: str, payload: bytes | str, ttl_s: int = 300) -> None:
        """Hand an enrolment result to the CLI waiting on ``upload_id``."""
        name = keys.reply_key(upload_id)
        with translated("push_reply"):
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(name, payload)
            pipe.expire(name, ttl_s)
            pipe.execute()

    def wait_reply(self, upload_id: str, timeout_s: float) -> bytes | None:
        """Block up to ``timeout_s`` for the reply; ``None`` on timeout."""
        name = keys.reply_key(upload_id)
        deadline = time.monotonic() + timeout_s
        while True:
            # short BLPOP rounds stay under the client's socket timeout
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with translated("wait_reply"):
                got: Any = self.client.blpop([name], timeout=min(left, 2.0))
            if got is not None:
                return bytes(got[1])


__all__ = ["FORMAT_VERSION", "Claim", "Probe", "RedisStore"]
