"""The reconciler: no upload object stays undecided because an event was lost.

Bucket events can go missing: SeaweedFS's filer webhook tries once and then
drops the event (a "dead letter" in its log), MinIO keeps undelivered events
in its queue directory and delivers them whenever ingest is back, and a task
can be lost with a broker that crashed. So ingest also looks at the bucket
itself. Every ``FACEGATE_RECONCILE_INTERVAL_S`` seconds each ingest instance
tries to take a lease in Redis (``facegate:reconciler:lease``, renewed by
its holder, expiring after three intervals): one instance runs the passes
while several may run. A pass

1. lists at most ``FACEGATE_RECONCILE_BATCH`` keys under ``uploads/``
   after the cursor (``facegate:reconciler:cursor``; back to the start when
   the listing ends, so successive passes walk the whole bucket, a page at a
   time);
2. keeps the upload objects written between ``FACEGATE_RECONCILE_GRACE_S``
   (younger ones are left to their webhook) and
   ``FACEGATE_RECONCILE_HORIZON_S`` ago (older ones were settled by earlier
   passes: their decision record, kept 24 h, may be gone, and sending them
   again would decide them twice);
3. sends each that has no decision and no pending mark through the normal
   path, :meth:`~services.ingest.service.IngestApp.reconcile`: it is
   decided and audited like any upload (usually ``DENY timeout``, since it
   is older than the deadline; ``unclaimed`` rules apply as usual).

A full walk of the bucket takes ``objects / BATCH * INTERVAL`` seconds; it
must stay under the horizon (with the defaults, 500 keys every 10 s: 1 M
objects in 5.6 h < 6 h). An object whose pending mark expires before its
decision arrives (its task was lost) is sent again; the matcher's ``SET NX``
keeps that to one decision.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from facegate.adapters import metrics
from facegate.core import keys
from facegate.core.errors import BadMessageError, ConfigError, TransientError
from services.ingest.service import IngestApp

log = logging.getLogger("services.ingest.reconciler")

LEASE_INTERVALS = 3.0
"""The lease outlives its holder's last renewal by this many intervals."""


@dataclass
class PassResult:
    """What one pass did."""

    ran: bool
    """False: another instance holds the lease."""
    listed: int = 0
    sent: list[str] = field(default_factory=list)
    """Upload ids sent through the normal path."""
    settled: int = 0
    """Decided or pending: nothing to do."""
    young: int = 0
    old: int = 0
    ignored: int = 0
    """Keys under uploads/ that are not upload keys."""
    wrapped: bool = False
    """The listing reached the end of the bucket (the next pass starts over)."""


class Reconciler:
    """Finds upload objects that were never sent on, and sends them."""

    def __init__(
        self,
        app: IngestApp,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock

    @property
    def lease_ttl_s(self) -> float:
        return max(self.settings.reconcile_interval_s, 1.0) * LEASE_INTERVALS

    def run_pass(self) -> PassResult:
        """One pass (see the module docstring); errors of the stores propagate."""
        store = self.app.claims
        if not store.hold_lease(keys.RECONCILER_LEASE, self.holder, self.lease_ttl_s):
            metrics.RECONCILER_PASSES.labels("not_holder").inc()
            return PassResult(ran=False)
        cursor = store.get_cursor(keys.RECONCILER_CURSOR)
        limit = self.settings.reconcile_batch
        listed = self.app.store.list_objects(keys.UPLOADS_PREFIX, start_after=cursor, limit=limit)
        result = PassResult(ran=True, listed=len(listed), wrapped=len(listed) < limit)
        now = self.clock()
        for info in listed:
            try:
                _door, _camera, upload_id = keys.parse_upload_key(info.key)
            except BadMessageError:
                result.ignored += 1
                continue
            written = info.last_modified
            if written is None or now - written < self.settings.reconcile_grace_s:
                result.young += 1
                continue
            if now - written > self.settings.reconcile_horizon_s:
                result.old += 1
                continue
            if store.get_decision(upload_id) is not None or store.is_pending(upload_id):
                result.settled += 1
                continue
            if self.app.reconcile(info) is None:
                result.settled += 1
            else:
                result.sent.append(upload_id)
        store.set_cursor(keys.RECONCILER_CURSOR, "" if result.wrapped else listed[-1].key)
        metrics.RECONCILER_PASSES.labels("ran").inc()
        metrics.RECONCILER_SENT.inc(len(result.sent))
        if result.sent:
            log.warning(
                "reconciler sent %d upload(s) whose event never arrived: %s",
                len(result.sent),
                ", ".join(result.sent[:10]) + (" ..." if len(result.sent) > 10 else ""),
            )
        return result

    def release(self) -> None:
        try:
            self.app.claims.release_lease(keys.RECONCILER_LEASE, self.holder)
        except TransientError as exc:
            log.info("could not release the reconciler lease (it expires): %s", exc)

    def run(self, stop: threading.Event) -> None:
        """Passes every ``FACEGATE_RECONCILE_INTERVAL_S`` until ``stop`` is set
        (the first one right away: what accumulated while ingest was down).
        A failed pass is logged and the next one tries again."""
        interval = self.settings.reconcile_interval_s
        log.info(
            "reconciler on: every %.1f s, grace %.0f s, horizon %d s, %d keys a pass (%s)",
            interval,
            self.settings.reconcile_grace_s,
            self.settings.reconcile_horizon_s,
            self.settings.reconcile_batch,
            self.holder,
        )
        try:
            while not stop.is_set():
                try:
                    self.run_pass()
                except (TransientError, ConfigError) as exc:
                    metrics.RECONCILER_PASSES.labels("failed").inc()
                    log.warning("reconciler pass failed (next in %.1f s): %s", interval, exc)
                except Exception:
                    metrics.RECONCILER_PASSES.labels("failed").inc()
                    log.exception("reconciler pass failed (next in %.1f s)", interval)
                stop.wait(interval)
        finally:
            self.release()


def start_reconciler(app: IngestApp, stop: threading.Event) -> threading.Thread | None:
    """The reconciler on a daemon thread; ``None`` when it is switched off
    (``FACEGATE_RECONCILE_INTERVAL_S=0``)."""
    if app.settings.reconcile_interval_s <= 0:
        log.warning("reconciler off (FACEGATE_RECONCILE_INTERVAL_S=0): lost events stay lost")
        return None
    thread = threading.Thread(
        target=Reconciler(app).run, args=(stop,), name="reconciler", daemon=True
    )
    thread.start()
    return thread


__all__ = ["LEASE_INTERVALS", "PassResult", "Reconciler", "start_reconciler"]
