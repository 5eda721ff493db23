"""Celery configuration shared by the workers (no broker contacted)."""

from __future__ import annotations

import pytest
from secrets_env import with_secrets

from facegate.adapters.celery_app import ENCODE_TASK, MATCH_TASK, make_celery
from services.encoder.settings import EncoderSettings
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit


def test_delivery_guarantees_and_serialisation() -> None:
    settings = MatcherSettings.from_env(with_secrets(visibility_timeout_s="90"))
    app = make_celery(settings, "t")
    conf = app.conf
    assert conf.broker_url == "redis://127.0.0.1:6390/1"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.broker_transport_options["visibility_timeout"] == 90
    assert conf.task_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_ignore_result is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_routes[ENCODE_TASK] == {"queue": "encode"}
    assert conf.task_routes[MATCH_TASK] == {"queue": "match"}
    assert (ENCODE_TASK, MATCH_TASK) == ("facegate.encode", "facegate.match")


def test_prefetch_follows_settings() -> None:
    app = make_celery(EncoderSettings.from_env(with_secrets(prefetch_multiplier="4")), "t")
    assert app.conf.worker_prefetch_multiplier == 4
