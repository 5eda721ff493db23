"""The provisioned Grafana dashboard (Grafana itself is not installable
here): its JSON's structure, its datasource, and that every panel's query is
one tests/e2e/test_prometheus.py had a real Prometheus accept
(deploy/grafana/queries.txt) and names only metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import facegate.adapters.metrics  # noqa: F401  (registers the metrics)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "facegate.json"
QUERIES = GRAFANA / "queries.txt"
QUEUE_SERIES = {"facegate_queue_messages", "facegate_queue_unacked_messages"}
"""Collected at scrape time from the broker (QueueDepthCollector)."""


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def validated() -> list[str]:
    lines = QUERIES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def panel_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def test_dashboard_structure() -> None:
    data = dashboard()
    assert data["uid"] == "facegate-pipeline" and data["title"]
    assert isinstance(data["schemaVersion"], int)
    panels = data["panels"]
    assert len(panels) >= 12
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat", "bargauge", "heatmap"), panel["title"]
        assert panel["title"].strip()
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == panel["datasource"]["uid"]


def test_panels_use_the_provisioned_datasource() -> None:
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    (datasource,) = source["datasources"]
    for panel in dashboard()["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    text = " ".join(panel_queries())
    for needle in (
        "histogram_quantile(0.99, sum by (le) (rate(facegate_upload_to_decision_seconds_bucket",
        "facegate_stage_seconds_bucket",
        "rate(facegate_decisions_total",
        "facegate_encoder_batch_size",
        "facegate_queue_messages",
        "sum by (reason) (rate(facegate_decisions_total",
        "facegate_backend_errors_total",
        "facegate_encoder_batch_wait_seconds",
        "facegate_gallery_people",
        "facegate_reconciler_passes_total",
        "facegate_task_retries_total",
    ):
        assert needle in text, needle


def test_every_panel_query_was_validated_by_prometheus() -> None:
    """Each panel query is in the list the real-Prometheus test sends, and
    that list holds nothing the dashboard no longer uses."""
    assert set(panel_queries()) == set(validated())
    assert len(validated()) == len(set(validated()))


def test_queries_name_only_metrics_the_code_exports() -> None:
    """Prometheus accepts a query over a misspelt metric (and returns
    nothing): so every facegate_* name is checked against the registry."""
    exported = set(QUEUE_SERIES)
    for family in REGISTRY.collect():
        exported.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            exported.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        if family.type == "counter":
            exported.add(f"{family.name}_total")
    used = {name for q in validated() for name in re.findall(r"\bfacegate_[a-z_]+", q)}
    assert used and used <= exported, sorted(used - exported)
