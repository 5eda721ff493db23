"""Scraping the running pipeline's ``/metrics`` (tests/e2e/test_pipeline_metrics.py,
tests/e2e/test_prometheus.py): fetch, parse with prometheus-client's own
parser, read one sample; and uploads that are waited for until decided."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from e2e_site import Site
from prometheus_client.parser import text_string_to_metric_families

WAIT_S = 90.0


@dataclass(frozen=True)
class Scrape:
    """One ``/metrics`` answer: ``{(sample name, sorted labels): value}``."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    families: set[str]

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))


def fetch(url: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def scrape(url: str) -> Scrape:
    status, kind, body = fetch(url)
    assert status == 200, f"{url}: {status} {body[:200]!r}"
    assert kind.startswith("text/plain"), f"{url}: {kind}"
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(body.decode()):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, families)


def scrape_all(site: Site) -> dict[str, Scrape]:
    return {name: scrape(url) for name, url in site.stack.config.metrics_urls().items()}


def readiness(url: str) -> tuple[int, dict[str, object]]:
    status, _, body = fetch(url)
    return status, json.loads(body)


def upload_and_wait(site: Site, door: str, photos: list[bytes]) -> list[str]:
    """Upload each photo directly (as a camera does) and wait until every
    one of them is decided; their upload ids."""
    ids = [site.camera.upload(door, "cam-metrics", data) for data in photos]
    deadline = time.monotonic() + WAIT_S
    while any(site.store.get_decision(i) is None for i in ids):
        assert time.monotonic() < deadline, (
            f"uploads not decided within {WAIT_S} s\nencoder:\n{site.log('encoder-1')}\n"
            f"matcher:\n{site.log('matcher-1')}"
        )
        time.sleep(0.1)
    return ids
