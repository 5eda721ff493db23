"""Enrolment replies: encoder -> the enrolling CLI, on ``facegate:reply:<upload_id>``.

Versioned JSON (``v`` = 1)::

    {"v": 1, "upload_id": ..., "person": ..., "key": ..., "model_id": ...,
     "dim": 128, "error": null | reason, "detail": "...",
     "faces": [{"box": {...}, "quality": 0.97, "encoding": "<base64 float32 LE>"}]}
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.core.errors import BadMessageError
from facegate.engine.types import Face

REPLY_VERSION = 1


def face_box(face: Face) -> dict[str, float]:
    """The JSON-able box of a face."""
    b = face.box
    return {
        "left": round(float(b.left), 1),
        "top": round(float(b.top), 1),
        "right": round(float(b.right), 1),
        "bottom": round(float(b.bottom), 1),
        "score": round(float(b.score), 4),
        "size": round(float(face.size), 1),
    }


def encode_reply(
    *,
    upload_id: str,
    person: str | None,
    key: str,
    faces: Sequence[Face],
    model_id: str,
    dim: int,
    error: str | None,
    detail: str = "",
) -> bytes:
    doc: dict[str, Any] = {
        "v": REPLY_VERSION,
        "upload_id": upload_id,
        "person": person,
        "key": key,
        "model_id": model_id,
        "dim": dim,
        "error": error,
        "detail": detail,
        "faces": [
            {
                "box": face_box(face),
                "quality": round(face.quality, 4),
                "encoding": base64.b64encode(
                    np.asarray(face.encoding, dtype="<f4").tobytes()
                ).decode(),
            }
            for face in faces
        ],
    }
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class EnrolReply:
    upload_id: str
    model_id: str
    dim: int
    error: str | None
    detail: str
    encodings: npt.NDArray[np.float32]
    """``(faces, dim)``."""
    qualities: tuple[float, ...]

    @property
    def faces(self) -> int:
        return int(self.encodings.shape[0])


def parse_reply(data: bytes) -> EnrolReply:
    """Decode a reply; ``BadMessageError`` when it does not validate."""
    try:
        doc: Any = json.loads(data)
        if doc.get("v") != REPLY_VERSION:
            raise ValueError(f"unsupported reply version {doc.get('v')!r}")
        dim = int(doc["dim"])
        if not 0 < dim <= 4096:
            raise ValueError(f"bad dim {dim}")
        rows = []
        qualities = []
        for face in doc["faces"]:
            arr = np.frombuffer(base64.b64decode(face["encoding"]), dtype="<f4")
            if arr.shape != (dim,):
                raise ValueError(f"encoding has {arr.size} values, expected {dim}")
            rows.append(arr.astype(np.float32))
            qualities.append(float(face.get("quality", 0.0)))
        encodings = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
        error = doc.get("error")
        return EnrolReply(
            upload_id=str(doc["upload_id"]),
            model_id=str(doc["model_id"]),
            dim=dim,
            error=None if error is None else str(error),
            detail=str(doc.get("detail", "")),
            encodings=encodings,
            qualities=tuple(qualities),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadMessageError(f"malformed enrolment reply: {exc}") from exc


__all__ = ["REPLY_VERSION", "EnrolReply", "encode_reply", "face_box", "parse_reply"]
