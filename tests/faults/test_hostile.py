"""Hostile input at a real gateway process: each gets its 4xx within bounded time and size,
the process stays within bounded memory, and serves normally afterwards."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from gateway.fhir.parse import MAX_OBJECTS
from tests.faults.conftest import running_gateway

pytestmark = pytest.mark.faults

MB = 1024 * 1024


def empties(n: int) -> bytes:
    return b'{"resourceType":"Patient","name":[' + b",".join([b"{}"] * n) + b"]}"


HOSTILE = [
    # (what, method, path, body, headers, expected statuses)
    ("1,000,000 empty names (3 MB)", "POST", "/Patient", empties(MAX_OBJECTS), {}, {413}),
    ("5,000,000 empty names (15 MB)", "POST", "/Patient", empties(5 * MAX_OBJECTS), {}, {413}),
    ("900,000 empty names", "POST", "/Patient", empties(900_000), {}, {400, 422}),
    ("nesting 200,000 deep", "POST", "/Patient", b"[" * 200_000, {}, {400}),
    ("NUL in a name search", "GET", "/Patient?name=%00", None, {}, {400}),
    ("NUL in an identifier search", "GET", "/Patient?identifier=a%00b", None, {}, {400}),
    ("NUL in _id", "GET", "/Patient?_id=%00", None, {}, {400}),
    ("NUL in a reference", "GET", "/Observation?subject=Patient/%00", None, {}, {400}),
    (
        "NUL in If-None-Exist",
        "POST",
        "/Patient",
        b'{"resourceType":"Patient"}',
        {"If-None-Exist": "identifier=a%00b"},
        {400},
    ),
    ("NUL in a conditional delete", "DELETE", "/Patient?identifier=a%00b", None, {}, {400}),
    ("a cursor of garbage", "GET", "/Patient?_cursor=%00%00", None, {}, {400}),
    ("Host of another site", "GET", "/Patient", None, {"Host": "evil.example:666"}, {400}),
]


@pytest.mark.parametrize("allowed_hosts", ['["fhir.example.cn"]'])
def test_hostile_input_gets_a_bounded_4xx_and_the_server_lives(fault_database, allowed_hosts):
    with running_gateway(fault_database, GATEWAY_ALLOWED_HOSTS=allowed_hosts) as gateway:
        baseline = gateway.rss_bytes()
        with httpx.Client(base_url=gateway.base, timeout=60) as http:
            for what, method, path, body, headers, expected in HOSTILE:
                started = time.monotonic()
                r = http.request(
                    method,
                    path,
                    content=body,
                    headers={"content-type": "application/fhir+json", **headers},
                )
                took = time.monotonic() - started
                assert r.status_code in expected, (what, r.status_code, r.text[:300])
                assert r.json()["resourceType"] == "OperationOutcome", what
                assert len(r.content) < 1 * MB, (what, len(r.content))
                assert took < 20, (what, took)
                assert gateway.rss_bytes() - baseline < 1024 * MB, what
                assert httpx.get(f"{gateway.root}/healthz").status_code == 200, what
            # A header block beyond the server's limit, and a request that is not HTTP.
            for raw in (
                b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                + b"a" * 1_000_000
                + b"\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS hello
            ):
                with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
                    with contextlib.suppress(OSError):  # closed before all was sent
                        s.sendall(raw)
                    answer = s.recv(65536)
                assert answer.split(b" ")[1] in (b"400", b"431"), answer[:200]
            created = http.post(
                "/Patient",
                json={"resourceType": "Patient", "name": [{"text": "张三"}]},
                headers={"content-type": "application/fhir+json"},
            )
            assert created.status_code == 201, created.text
        assert "Traceback" not in gateway.log()
