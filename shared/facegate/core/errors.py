"""The one error tree of facegate.

::

    FacegateError
    ├── ConfigError                 settings missing, out of bounds, placeholder secrets
    ├── ModelError                  pretrained model source missing, corrupt or unsupported
    │   └── ModelFormatError        a dlib .dat / CSV weight file that does not parse
    ├── PermanentError              retrying cannot help; becomes DENY with a reason
    │   ├── ImageError              undecodable, empty, truncated, too large (reason: bad_image)
    │   ├── NoFaceError             no face found (reason: no_face)
    │   ├── SeveralFacesError       more than one face where one is required
    │   ├── UnknownDoorError        the door is not configured (reason: unknown_door)
    │   ├── UnknownPersonError      a claimed/enrolled name that does not exist
    │   ├── BadMessageError         a message or event that does not validate
    │   └── EnrolmentError          enrolment photos refused (no face, several faces...)
    └── TransientError              infrastructure hiccup; the task is retried
        ├── StoreUnavailableError   object store unreachable / 5xx
        ├── RedisUnavailableError   Redis unreachable
        └── NoAnswerError           a worker did not answer in time (none running?)

Adapters translate library exceptions into this tree where they enter
(``raise StoreUnavailableError(...) from exc``); nothing else catches foreign
exceptions by type.
"""

from __future__ import annotations


class FacegateError(Exception):
    """Base of every error facegate raises on purpose."""


class ConfigError(FacegateError):
    """Configuration is missing, malformed, out of bounds or unsafe."""


class ModelError(FacegateError):
    """A pretrained model cannot be found, built or loaded."""


class ModelFormatError(ModelError):
    """A model file exists but does not parse as the expected format."""


class PermanentError(FacegateError):
    """An error that retrying cannot fix; the upload is denied with ``reason``."""

    reason: str = "internal_error"


class ImageError(PermanentError):
    """The upload is not a usable image (empty, truncated, not an image, too big)."""

    reason = "bad_image"


class NoFaceError(PermanentError):
    reason = "no_face"


class SeveralFacesError(PermanentError):
    reason = "several_faces"


class UnknownDoorError(PermanentError):
    reason = "unknown_door"


class UnknownPersonError(PermanentError):
    reason = "unknown_person"


class BadMessageError(PermanentError):
    reason = "bad_request"


class EnrolmentError(PermanentError):
    """One or more enrolment photos were refused; nothing was enrolled."""

    reason = "enrolment_refused"


class TransientError(FacegateError):
    """Infrastructure is briefly unavailable; the operation should be retried."""


class StoreUnavailableError(TransientError):
    """The object store could not be reached or answered with a server error."""


class RedisUnavailableError(TransientError):
    """Redis could not be reached."""


class NoAnswerError(TransientError):
    """A worker did not answer in time (is one running?)."""
