"""kill -9 of the gateway during concurrent transaction ingest and If-Match updates, on SQLite
and PostgreSQL, restarted each time: every acknowledged write present once, every bundle all
or nothing, no version gap, every reference resolves, search agrees with read; and nothing
the killed process started lives on."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from tests.faults.conftest import ROUNDS, running_gateway, survivors
from tests.faults.workload import (
    FHIR,
    Ledger,
    bundle_writer,
    check_ledger,
    counter_writer,
    new_counter,
)

pytestmark = pytest.mark.faults

BUNDLE_WRITERS = 4
COUNTER_WRITERS = 2


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_during_ingest_loses_nothing_acknowledged(fault_database, workers):
    ledger = Ledger()
    rnd = random.Random(16)
    with running_gateway(fault_database, workers) as gateway:
        with httpx.Client(base_url=gateway.base, headers=FHIR, timeout=60) as http:
            counters = [new_counter(http, ledger) for _ in range(COUNTER_WRITERS)]
        for _ in range(ROUNDS):
            if gateway.process is None:
                gateway.start()
            stop = threading.Event()
            threads = [
                threading.Thread(target=bundle_writer, args=(gateway.base, ledger, stop, f"w{i}"))
                for i in range(BUNDLE_WRITERS)
            ] + [
                threading.Thread(target=counter_writer, args=(gateway.base, ledger, stop, pid))
                for pid in counters
            ]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.8, 2.0))
            # SIGKILL to the server process alone, as the OOM killer does: whatever it started
            # (uvicorn workers, validation processes) must end by itself.
            pids = [p.pid for p in gateway.processes()]
            gateway.process.kill()
            gateway.process.wait(10)
            gateway.process = None
            stop.set()
            for t in threads:
                t.join(60)
            deadline = time.monotonic() + 15
            while survivors(pids) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert survivors(pids) == [], "processes outlived the killed gateway"
        gateway.start()
        report = check_ledger(gateway.base, ledger)
    print(f"kill -9 x{ROUNDS}, {workers} worker(s): {report}, statuses {ledger.statuses}")
    assert report["bundles acknowledged"] > 0 and report["counter versions"] > COUNTER_WRITERS
    assert set(ledger.statuses) <= {200, 201, 412, 503}, ledger.statuses
