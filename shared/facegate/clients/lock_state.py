"""What a lock remembers across restarts: the events it accepted, and where
it stopped reading its door's stream.

One small JSON file per door (``<state_dir>/<door>.json``)::

    {"v": 1, "door": "front", "last_id": "1767000000123-0",
     "accepted": {"<event id>": <expires_at>, ...}, "not_before": null}

Order of work, so that a lock never acts twice on one event: the guard
records an accepted event *before* :func:`~facegate.core.event_verify.verify_event`
returns it, and the caller acts (opens) only after that. A record is a
write of the whole file to ``<door>.json.tmp``, ``fsync``, ``rename`` over
the old file, ``fsync`` of the folder: a crash (power loss, ``kill -9``)
leaves the old file or the new one, never half of one. A lock that dies
between recording and opening has spent the event without opening: the
resident is refused and tries again (fail closed). When the file cannot be
written the event is refused as ``not_recorded``.

The file is bounded: ids are dropped once their event expired (an expired
event is refused anyway), and at most ``max_entries`` live ids are kept;
beyond that new events are refused as ``replayed`` (fail closed, as the
in-memory :class:`~facegate.core.event_verify.ReplayGuard`).

A file that exists but cannot be read back (corrupt, another format) is set
aside as ``<door>.json.corrupt-<time>`` and the lock starts with a watermark:
it refuses every event issued up to ``now + max_skew_s`` (any event it may
have accepted before was issued earlier than that), so it may stay shut for
a few seconds but never re-accepts. A missing file is a lock that never
accepted anything (records are only ever replaced, never removed).

One process per door and folder: the state is locked with ``flock`` on
``<door>.lock`` for the process's life; a second lock process for the same
door and folder refuses to start.

Assumed: the lock's clock does not jump back by more than an event's
lifetime (keep it on NTP); an id forgotten after expiry would otherwise
pass again while its event looked fresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Final

from facegate.core import keys
from facegate.core.errors import ConfigError
from facegate.core.event_verify import EventRejected, ReplayGuard
from facegate.core.ids import is_stream_id, is_upload_id, stream_id_key
from facegate.core.messages import DoorEvent

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1
DEFAULT_MAX_ENTRIES: Final = 4096


class LockState:
    """The replay guard and resume point of one door's lock.

    ``path=None`` keeps both in memory only (a lock that may re-accept after
    a restart: tests, tools); :meth:`open` gives the persistent one.
    """

    def __init__(
        self,
        door: str,
        path: Path | None = None,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        last_id: str | None = None,
        not_before: float | None = None,
    ) -> None:
        self.door = keys.check_door(door)
        self.path = path
        self.guard = ReplayGuard(max_entries)
        self.last_id = last_id
        """The last stream id this lock has dealt with (``None``: none yet)."""
        self.not_before = not_before
        """Events issued at or before this time are refused (state was lost)."""
        self._dirty = False
        self._lock_fd: int | None = None

    # --- opening -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        state_dir: Path | str,
        door: str,
        *,
        now: float | None = None,
        max_skew_s: float = 5.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> LockState:
        """The persistent state of ``door`` in ``state_dir`` (created when
        missing; see the module docstring for a corrupt file)."""
        folder = Path(state_dir)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        door = keys.check_door(door)
        state = cls(door, folder / f"{door}.json", max_entries=max_entries)
        state._take_lock(folder / f"{door}.lock")
        assert state.path is not None
        when = time.time() if now is None else now
        try:
            raw = state.path.read_bytes()
        except FileNotFoundError:
            return state
        except OSError as exc:
            state.close()
            raise ConfigError(f"cannot read the lock state {state.path}: {exc}") from exc
        try:
            state._load(raw, when)
        except (ValueError, TypeError, KeyError) as exc:
            aside = state.path.with_name(f"{state.path.name}.corrupt-{int(when)}")
            with contextlib.suppress(OSError):
                state.path.replace(aside)
            log.error(
                "lock state %s is unreadable (%s); set aside as %s: refusing events issued "
                "before %.3f",
                state.path, exc, aside.name, when + max_skew_s,
            )
            state.guard = ReplayGuard(max_entries)
            state.last_id = None
            state.not_before = when + max_skew_s
            state._write()
        return state

    def _take_lock(self, lock_path: Path) -> None:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigError(
                f"another lock process holds {lock_path}: one process per door and folder"
            ) from exc
        self._lock_fd = fd

    def _load(self, raw: bytes, now: float) -> None:
        doc: Any = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("v") != STATE_VERSION:
            raise ValueError("not a version 1 lock state")
        if doc.get("door") != self.door:
            raise ValueError(f"state of door {doc.get('door')!r}, not {self.door!r}")
        last_id = doc.get("last_id")
        if last_id is not None and not (isinstance(last_id, str) and is_stream_id(last_id)):
            raise ValueError("bad last_id")
        not_before = doc.get("not_before")
        if not_before is not None and not _finite(not_before):
            raise ValueError("bad not_before")
        accepted = doc["accepted"]
        if not isinstance(accepted, dict):
            raise ValueError("accepted must be an object")
        live: list[tuple[float, str]] = []
        for event_id, expires_at in accepted.items():
            if not is_upload_id(event_id) or not _finite(expires_at):
                raise ValueError(f"bad accepted entry {event_id!r}")
            if expires_at >= now:
                live.append((float(expires_at), event_id))
        # every id still live is kept, even beyond max_entries (never forget early)
        self.guard = ReplayGuard(max(self.guard.max_entries, len(live)))
        for expires_at, event_id in sorted(live):
            self.guard.check_and_remember(event_id, expires_at, now)
        self.last_id = last_id
        self.not_before = None if not_before is None else float(not_before)

    # --- the guard (facegate.core.event_verify.EventGuard) ---------------------------

    def accept(self, event: DoorEvent, now: float) -> None:
        """Remember ``event`` (and its stream id as the resume point) durably,
        or raise ``EventRejected``: ``replayed``, ``not_recorded``."""
        if self.not_before is not None and event.issued_at <= self.not_before:
            raise EventRejected("replayed", "issued before this lock lost its state")
        self.guard.check_and_remember(event.id, event.expires_at, now)
        previous = self.last_id
        if event.stream_id is not None:
            self.last_id = _later(self.last_id, event.stream_id)
        try:
            self._write()
        except OSError as exc:
            self.guard.forget(event.id)
            self.last_id = previous
            raise EventRejected("not_recorded", f"lock state not written: {exc}") from exc

    def advance(self, stream_id: str) -> None:
        """Note a stream entry dealt with without accepting it (refused,
        expired): written with the next record or :meth:`flush`."""
        later = _later(self.last_id, stream_id)
        if later != self.last_id:
            self.last_id = later
            self._dirty = True

    def flush(self) -> None:
        """Write a moved resume point now (a failure only means re-reading
        a few refused entries after a restart)."""
        if self._dirty:
            try:
                self._write()
            except OSError as exc:
                log.warning("lock state %s not written: %s", self.path, exc)

    # --- writing -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "door": self.door,
            "last_id": self.last_id,
            "accepted": dict(self.guard.items()),
            "not_before": self.not_before,
        }

    def _write(self) -> None:
        if self.path is None:
            self._dirty = False
            return
        data = json.dumps(self.snapshot(), separators=(",", ":"), sort_keys=True).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self._dirty = False

    def close(self) -> None:
        """Release the folder lock (the state stays on disk)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> LockState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _later(current: str | None, candidate: str) -> str:
    if current is None or stream_id_key(candidate) > stream_id_key(current):
        return candidate
    return current


__all__ = ["DEFAULT_MAX_ENTRIES", "STATE_VERSION", "LockState"]
