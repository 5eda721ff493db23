"""A real Prometheus (Debian's ``prometheus``; ``scripts/ensure-prometheus.sh``
installs it when missing) scraping the e2e stack with the shipped scrape
config (deploy/prometheus/prometheus.yml), its targets rewritten to the
stack's local ports and its interval to 1 s. Through its HTTP API: every
target is up, every query of the Grafana dashboard (deploy/grafana/
queries.txt) is accepted, and the key ones return data once uploads were
decided. Port: ``FACEGATE_E2E_BASE_PORT + 40``."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_metrics import fetch, upload_and_wait
from e2e_site import Site

from facegate.core.policy import DoorMode, DoorPolicy
from facegate.tools.settings import ToolSettings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
QUERIES = ROOT / "deploy" / "grafana" / "queries.txt"
PORT = ToolSettings.from_env().e2e_base_port + 40
DOOR = "prometheus-door"

KEY_QUERIES = {
    "histogram_quantile(0.5, sum by (le) (rate(facegate_upload_to_decision_seconds_bucket[5m])))",
    "histogram_quantile(0.95, sum by (le) (rate(facegate_upload_to_decision_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le) (rate(facegate_upload_to_decision_seconds_bucket[5m])))",
    "histogram_quantile(0.95, sum by (le, stage) (rate(facegate_stage_seconds_bucket[5m])))",
    "sum by (decision) (rate(facegate_decisions_total[5m]))",
    "sum by (reason) (rate(facegate_decisions_total[5m]))",
    "sum by (source, outcome) (rate(facegate_ingest_uploads_total[5m]))",
    "max by (queue) (facegate_queue_messages)",
    "sum(rate(facegate_encoder_batch_size_sum[5m])) / "
    "sum(rate(facegate_encoder_batch_size_count[5m]))",
    "max(facegate_model_build_seconds)",
    'up{job=~"facegate-.*"}',
}
"""Must return at least one finite value after the uploads."""


def queries() -> list[str]:
    lines = QUERIES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def local_config(site: Site, port: int) -> dict[str, Any]:
    """The shipped scrape config, pointed at the stack's processes."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    urls = site.stack.config.metrics_urls()
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name == "prometheus":
            targets = [f"127.0.0.1:{port}"]
        else:
            service = name.removeprefix("facegate-")
            targets = [
                urllib.parse.urlsplit(url).netloc
                for process, url in urls.items()
                if process.split("-")[0] == service
            ]
            assert targets, f"the stack runs no {service}"
            assert all(urls[p].endswith(job["metrics_path"]) for p in urls if p.startswith(service))
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets}]
    return config


def ensure_prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-prometheus.sh")],
                       check=False, timeout=600)
        found = shutil.which("prometheus")
    if found is None:
        message = "needs Debian's prometheus (scripts/ensure-prometheus.sh could not install it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI=true)")
        pytest.skip(message)
    return found


def api(path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{PORT}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    status, _, body = fetch(url)
    answer: dict[str, Any] = json.loads(body)
    answer["http_status"] = status
    return answer


@pytest.fixture(scope="module")
def prometheus(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    binary = ensure_prometheus()
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(local_config(site, PORT)))
    log = work / "prometheus.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{PORT}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=work,
        )
    try:
        deadline = time.monotonic() + 60
        while not _ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready() -> bool:
    try:
        return fetch(f"http://127.0.0.1:{PORT}/-/ready", timeout=2)[0] == 200
    except OSError:
        return False


def wait_for(query: str, ok: Any, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = api("query", query=query)
        result: list[dict[str, Any]] = answer.get("data", {}).get("result", [])
        if answer.get("status") == "success" and ok(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{query}: {answer}")
        time.sleep(0.5)


def test_the_shipped_config_scrapes_every_service(site: Site, prometheus: Path) -> None:
    result = wait_for('up{job=~"facegate-.*"}',
                      lambda r: len(r) == 3 and all(s["value"][1] == "1" for s in r))
    assert {s["metric"]["job"] for s in result} == {
        "facegate-ingest", "facegate-encoder", "facegate-matcher"}


def test_every_dashboard_query_is_accepted_and_the_key_ones_return_data(
    site: Site, prometheus: Path, samples_dir: Path
) -> None:
    assert set(queries()) >= KEY_QUERIES
    site.admin.set_door(DoorPolicy(DOOR, DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    wait_for('up{job=~"facegate-.*"}', lambda r: len(r) == 3)
    time.sleep(2.0)  # a few scrapes before the uploads: the rates start from them
    photos = [(samples_dir / n).read_bytes() for n in ("obama.jpg", "biden.jpg")]
    for _ in range(2):
        upload_and_wait(site, DOOR, photos)
        time.sleep(1.5)
    wait_for(f'sum(facegate_decisions_total{{door="{DOOR}"}})',
             lambda r: bool(r) and float(r[0]["value"][1]) >= 4)
    time.sleep(2.0)
    refused = {}
    empty = []
    for query in queries():
        answer = api("query", query=query)
        if answer["status"] != "success":
            refused[query] = answer.get("error")
            continue
        if query in KEY_QUERIES:
            values = [float(s["value"][1]) for s in answer["data"]["result"]]
            if not any(math.isfinite(v) for v in values):
                empty.append(query)
    assert refused == {}
    assert empty == []
    p99 = api("query", query=sorted(q for q in KEY_QUERIES if "0.99" in q)[0])
    worst = float(p99["data"]["result"][0]["value"][1])
    assert 0.0 < worst < 60.0
