"""The Celery app object: ``celery -A services.matcher.worker worker -Q match``.

Settings are read from the environment at import (this module exists to be
named on a command line); nothing connects until the worker starts.
"""

from __future__ import annotations

from facegate.runtime.settings import MatcherSettings
from services.matcher.app import build_celery

settings = MatcherSettings.from_env()
app = build_celery(settings)
celery = app
