"""The pipeline's figures move as uploads are decided: every process's
``/metrics`` (ingest, encoder-1, matcher-1) scraped before and after real
uploads, parsed with prometheus-client's parser; the workers' health and
readiness answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_metrics import readiness, scrape_all, upload_and_wait
from e2e_site import Site

from facegate.core.policy import DoorMode, DoorPolicy

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

DOOR = "metrics-door"


@pytest.fixture(scope="module")
def door(site: Site) -> str:
    site.admin.set_door(DoorPolicy(DOOR, DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    return DOOR


def test_every_process_serves_metrics(site: Site) -> None:
    scrapes = scrape_all(site)
    assert set(scrapes) == {"ingest", "encoder-1", "matcher-1"}
    assert "facegate_ingest_uploads" in scrapes["ingest"].families
    encoder, matcher = scrapes["encoder-1"], scrapes["matcher-1"]
    assert encoder.get("facegate_model_loaded") == 1.0
    assert encoder.get("facegate_model_build_seconds") > 0.0
    for worker in (encoder, matcher):  # read from the broker at scrape time
        assert {"facegate_queue_messages", "facegate_queue_unacked_messages"} <= worker.families
        assert ("facegate_queue_messages", (("queue", "encode"),)) in worker.samples
        assert ("facegate_queue_messages", (("queue", "match"),)) in worker.samples


def test_workers_are_live_and_ready(site: Site) -> None:
    for name, url in site.stack.config.metrics_urls().items():
        if name == "ingest":
            continue
        base = url.removesuffix("/metrics")
        assert readiness(f"{base}/healthz") == (200, {"status": "ok"})
        status, answer = readiness(f"{base}/readyz")
        assert status == 200, answer
        checks = answer["checks"]
        assert isinstance(checks, dict)
        built = "model" if name.startswith("encoder") else "built"
        expected = {"redis", "broker", "consuming", built}
        assert set(checks) == expected and set(checks.values()) == {"ok"}, checks


def test_figures_move_as_uploads_are_decided(
    site: Site, door: str, samples_dir: Path
) -> None:
    names = ("obama.jpg", "biden.jpg", "obama2.jpg")
    photos = [(samples_dir / name).read_bytes() for name in names]
    before = scrape_all(site)
    ids = upload_and_wait(site, door, photos)
    after = scrape_all(site)
    n = len(ids)

    ingest_b, ingest_a = before["ingest"], after["ingest"]
    direct = {"source": "direct", "outcome": "encode"}
    assert ingest_a.get("facegate_ingest_uploads_total", **direct) == (
        ingest_b.get("facegate_ingest_uploads_total", **direct) + n
    )

    enc_b, enc_a = before["encoder-1"], after["encoder-1"]
    assert enc_a.get("facegate_encoder_uploads_total", reason="ok") >= (
        enc_b.get("facegate_encoder_uploads_total", reason="ok") + n
    )
    assert enc_a.get("facegate_faces_per_upload_count") >= enc_b.get(
        "facegate_faces_per_upload_count") + n
    # each photo holds one face
    assert enc_a.get("facegate_faces_per_upload_sum") - enc_b.get(
        "facegate_faces_per_upload_sum") >= n
    batches = enc_a.get("facegate_encoder_batch_size_count") - enc_b.get(
        "facegate_encoder_batch_size_count")
    batched = enc_a.get("facegate_encoder_batch_size_sum") - enc_b.get(
        "facegate_encoder_batch_size_sum")
    assert 1 <= batches <= n and batched >= n
    assert enc_a.get("facegate_encoder_engine_seconds_count") > enc_b.get(
        "facegate_encoder_engine_seconds_count")

    m_b, m_a = before["matcher-1"], after["matcher-1"]
    decided = m_a.total("facegate_decisions_total", door=door) - m_b.total(
        "facegate_decisions_total", door=door)
    assert decided == n
    assert m_a.get("facegate_upload_to_decision_seconds_count") >= m_b.get(
        "facegate_upload_to_decision_seconds_count") + n
    latency = m_a.get("facegate_upload_to_decision_seconds_sum") - m_b.get(
        "facegate_upload_to_decision_seconds_sum")
    assert 0.0 < latency < n * 60.0
    for stage in ("ingest", "encode_queue", "fetch", "decode", "detect", "embed",
                  "match_queue", "match", "publish"):
        moved = m_a.get("facegate_stage_seconds_count", stage=stage) - m_b.get(
            "facegate_stage_seconds_count", stage=stage)
        assert moved >= n, stage
    assert m_a.get("facegate_gallery_reload_seconds_count") >= 1
    # nothing names a person or an upload
    text = " ".join(f"{k}" for s in after.values() for k in s.samples)
    assert not any(i in text for i in ids)
    assert "obama" not in text and "biden" not in text
