"""The bridge's files: the doors' public keys, and how far each door was published.

Keys folder (``FACEGATE_MQTT_KEYS_DIR``): one ``<door>.pub`` per bridged
door, holding the door's Ed25519 public key as 64 hex digits a line (two
lines while a key is rotated), exactly what ``facegate doors key DOOR``
prints for a lock. Lines starting with ``#`` are comments. The bridge reads
the folder again every ``FACEGATE_MQTT_RESCAN_S``: a new file is a new door,
a changed file a rotated key, a removed file a door no longer bridged. An
unreadable file is logged and skipped (that door is not bridged), never
guessed at.

State folder (``FACEGATE_MQTT_STATE_DIR``): ``<door>.cursor`` holds the last
stream id whose messages the broker acknowledged (PUBACK), written with
``fsync`` and ``rename`` after the acknowledgement, so a bridge killed at
any point publishes again at most the one event it was busy with, and
nothing it had finished. One bridge per state folder (``flock`` on
``bridge.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path

from facegate.core import keys
from facegate.core.errors import BadMessageError, ConfigError
from facegate.core.event_verify import DoorKeys
from facegate.core.ids import is_stream_id

log = logging.getLogger(__name__)

KEY_SUFFIX = ".pub"
CURSOR_SUFFIX = ".cursor"


def read_keys_dir(folder: Path) -> dict[str, DoorKeys]:
    """``{door: its public keys}`` of every readable ``<door>.pub`` in ``folder``
    (a missing folder: no doors)."""
    found: dict[str, DoorKeys] = {}
    try:
        paths = sorted(folder.glob(f"*{KEY_SUFFIX}"))
    except OSError as exc:
        log.warning("cannot list the keys folder %s: %s", folder, exc)
        return found
    for path in paths:
        door = path.name[: -len(KEY_SUFFIX)]
        try:
            keys.check_door(door)
            lines = [
                line.strip() for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
            found[door] = DoorKeys(lines)
        except (BadMessageError, ValueError, OSError) as exc:
            log.warning("key file %s skipped: %s", path, exc)
    return found


def write_key_file(folder: Path, door: str, public_hex: list[str]) -> Path:
    """Write ``<door>.pub`` (what ``facegate stack up`` does for the local doors)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{keys.check_door(door)}{KEY_SUFFIX}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{h}\n" for h in public_hex))
    os.replace(tmp, path)
    return path


class Cursors:
    """The last published stream id of each door, on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = folder / "bridge.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigError(
                f"another bridge holds {lock_path}: one bridge per state folder"
            ) from exc
        self._lock_fd: int | None = fd

    def _path(self, door: str) -> Path:
        return self.folder / f"{keys.check_door(door)}{CURSOR_SUFFIX}"

    def get(self, door: str) -> str | None:
        """The door's last published stream id; ``None``: never published.
        A file that cannot be read is a configuration error (refusing to
        start beats publishing a door's whole history again)."""
        path = self._path(door)
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}; fix or remove it") from exc
        value = doc.get("last_id") if isinstance(doc, dict) else None
        if not (isinstance(value, str) and is_stream_id(value)):
            raise ConfigError(f"{path} holds no stream id; fix or remove it")
        return value

    def save(self, door: str, stream_id: str) -> None:
        path = self._path(door)
        data = json.dumps({"door": door, "last_id": stream_id}).encode()
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None


__all__ = ["CURSOR_SUFFIX", "KEY_SUFFIX", "Cursors", "read_keys_dir", "write_key_file"]
