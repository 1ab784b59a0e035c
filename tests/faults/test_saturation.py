"""64 concurrent clients each posting the largest Synthea bundle at a gateway with two server
workers: every answer is 200 or 503 with Retry-After (never another 5xx), the memory of all
gateway processes stays bounded and comes back near its baseline afterwards."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import need_corpus
from tests.faults.conftest import running_gateway

pytestmark = pytest.mark.faults

CLIENTS = 64
MB = 1024 * 1024
PEAK_LIMIT = 1536 * MB  # the target: 1.5 GB for all gateway processes
KEPT_LIMIT = 300 * MB  # what may stay after: warmed caches, allocator arenas


def largest_synthea() -> bytes:
    folder = need_corpus("synthea-r4")
    return max(folder.glob("*.json"), key=lambda p: p.stat().st_size).read_bytes()


def test_64_concurrent_large_bundles_get_200_or_503_and_memory_comes_back(fault_database):
    body = largest_synthea()
    assert len(body) > 3 * MB
    with running_gateway(fault_database, workers=2) as gateway:
        time.sleep(1)
        baseline = gateway.rss_bytes()
        peak = baseline
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not sampling.is_set():
                peak = max(peak, gateway.rss_bytes())
                time.sleep(0.1)

        answers: Counter[int] = Counter()
        refused: list[httpx.Response] = []

        def post() -> None:
            r = httpx.post(
                gateway.base,
                content=body,
                headers={"content-type": "application/fhir+json"},
                timeout=300,
            )
            answers[r.status_code] += 1
            if r.status_code != 200:
                refused.append(r)

        sampler = threading.Thread(target=sample)
        sampler.start()
        clients = [threading.Thread(target=post) for _ in range(CLIENTS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(300)
        time.sleep(3)  # the last trims
        sampling.set()
        sampler.join()
        after = gateway.rss_bytes()
        log = gateway.log()
    print(
        f"{dict(answers)}; memory MB: baseline {baseline / MB:.0f}, peak {peak / MB:.0f}, "
        f"after {after / MB:.0f}"
    )
    assert set(answers) <= {200, 503} and answers[200] > 0, answers
    for r in refused:
        assert int(r.headers["retry-after"]) > 0
        assert r.json()["resourceType"] == "OperationOutcome"
    assert peak <= PEAK_LIMIT, peak / MB
    assert after - baseline <= KEPT_LIMIT, (baseline / MB, after / MB)
    assert "Traceback" not in log
