"""The HTTP edge against hostile and careless clients, on a real server (uvicorn with the
options `gateway serve` uses): protocol errors, slow bodies, idle and excess connections, and
Host headers. Each answer is an OperationOutcome where the gateway can shape it."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.http.hosts import HostCheck
from gateway.http.server import MAX_HEAD_BYTES
from gateway.search.reindex import migrate_async
from tests.api.test_crud import PATIENT
from tests.conftest import client_for, running_app
from tests.live import LiveGateway, live_server

BODY_DEADLINE = 1.0
KEEP_ALIVE = 1


@pytest.fixture(scope="module")
async def edge_database(tmp_path_factory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('edge') / 'gateway.db'}"
    await migrate_async(url)
    return url


@pytest.fixture(scope="module")
def edge(edge_database) -> Iterator[LiveGateway]:
    with live_server(
        edge_database,
        body_read_timeout=BODY_DEADLINE,
        keep_alive_timeout=KEEP_ALIVE,
        max_connections=8,
        allowed_hosts=["fhir.example.cn", "*.region.cn"],
    ) as gateway:
        yield gateway


def exchange(port: int, raw: bytes, pause: float = 0.0, timeout: float = 10.0) -> bytes:
    """Send raw bytes (the last chunk after `pause`), read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return data


def split_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


MALFORMED = {
    "request line": b"GARBAGE\r\n\r\n",
    "header line": b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
    "content-length and chunked (smuggling)": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "two content-lengths (smuggling)": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
        b"Content-Length: 3\r\n\r\n{}"
    ),
    "broken chunk size": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/fhir+json\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_request_that_is_not_http_gets_an_operation_outcome(edge, raw):
    status, headers, body = split_response(exchange(edge.port, raw))
    assert status == 400
    assert headers["content-type"].startswith("application/fhir+json")
    assert headers["connection"] == "close"
    assert httpx.Response(200, content=body).json()["resourceType"] == "OperationOutcome"
    assert httpx.get(f"{edge.base}/metadata").status_code == 200  # and the server goes on


def test_a_body_that_does_not_arrive_in_time_is_a_408(edge):
    head = (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{"
    )
    started = time.monotonic()
    status, headers, body = split_response(exchange(edge.port, head, timeout=BODY_DEADLINE + 5))
    assert status == 408
    assert time.monotonic() - started < BODY_DEADLINE + 3
    assert b'"timeout"' in body and b"OperationOutcome" in body


def test_an_idle_connection_is_closed(edge):
    with socket.create_connection(("127.0.0.1", edge.port), timeout=KEEP_ALIVE + 5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        started = time.monotonic()
        while chunk := s.recv(65536):  # the answer, then the close of the idle connection
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < KEEP_ALIVE + 3


def test_connections_beyond_the_limit_are_turned_away(edge):
    held = [socket.create_connection(("127.0.0.1", edge.port)) for _ in range(8)]
    try:
        time.sleep(0.2)
        status, headers, _ = split_response(
            exchange(edge.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        )
        assert status == 503
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert httpx.get(f"{edge.base}/metadata").status_code == 200


@pytest.mark.parametrize("host", ["evil.example:666", "fhir.example.cn.evil.example", "region.cn"])
def test_a_host_outside_the_allowed_list_is_a_400(edge, host):
    r = httpx.post(f"{edge.base}/Patient", json=PATIENT, headers={"Host": host})
    assert r.status_code == 400, r.text
    assert "location" not in r.headers
    outcome = r.json()
    assert outcome["issue"][0]["expression"] == ["Host"]
    assert "GW-1047" in r.text


@pytest.mark.parametrize(
    "host", ["fhir.example.cn", "FHIR.example.cn:443", "a.region.cn:8443", "127.0.0.1"]
)
def test_allowed_hosts_build_the_links(edge, host):
    r = httpx.post(f"{edge.base}/Patient", json=PATIENT, headers={"Host": host})
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith(f"http://{host}/fhir/Patient/")


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("fhir.example.cn", True),
        ("fhir.example.cn:8080", True),
        ("x.region.cn", True),
        ("region.cn", False),
        ("[::1]:8080", True),
        ("localhost", True),
        ("", False),
        ("evil.example", False),
        ("fhir.example.cn@evil.example", False),
    ],
)
def test_host_check_rules(header, allowed):
    check = HostCheck(lambda *a: None, ["fhir.example.cn", "*.region.cn"])  # type: ignore[arg-type]
    assert check.allows(header) is allowed


async def test_a_public_base_url_wins_over_any_host(edge_database):
    base = "https://fhir.region.cn/fhir"
    async with running_app(edge_database, public_base_url=base) as application:
        async with client_for(application) as c:
            r = await c.post("/Patient", json=PATIENT, headers={"Host": "evil.example:666"})
            assert r.status_code == 201, r.text
            assert r.headers["location"].startswith(f"{base}/Patient/")
            found = (await c.get("/Patient", headers={"Host": "evil.example"})).json()
            assert all(link["url"].startswith(base) for link in found["link"])
            assert all(e["fullUrl"].startswith(base) for e in found["entry"])


def test_bodies_beyond_the_byte_budget_wait_then_get_503(edge_database):
    """One client declares a large body and sends it slowly: it holds the bytes it declared
    (not a work slot), and a second body that does not fit is refused with 503 after the
    admission wait, while reads go on."""
    with live_server(edge_database, max_inflight_bytes=2000, body_read_timeout=10) as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as slow:
            slow.sendall(
                b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/fhir+json\r\nContent-Length: 1900\r\n\r\n{"
            )
            time.sleep(0.3)
            r = httpx.post(f"{gateway.base}/Patient", json=PATIENT, timeout=10)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert "GW-1046" in r.text
            assert httpx.get(f"{gateway.base}/Patient").status_code == 200
        time.sleep(0.3)  # the slow client gave up: its bytes are free again
        assert httpx.post(f"{gateway.base}/Patient", json=PATIENT).status_code == 201


@pytest.mark.parametrize("pieces", [1, 40])
def test_a_head_beyond_the_limit_is_a_431(edge, pieces):
    """Bounded however it arrives: in one piece far beyond the limit, or trickled in pieces
    that each look harmless."""
    size = 1024 * 1024 if pieces == 1 else 2 * MAX_HEAD_BYTES
    raw = b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    raw += b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(size // 1000))
    raw += b"\r\n"
    step = -(-len(raw) // pieces)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as s:
        with contextlib.suppress(OSError):  # the server may close before all is sent
            for i in range(0, len(raw), step):
                s.sendall(raw[i : i + step])
                time.sleep(0.01)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                data += chunk
    status, headers, body = split_response(data)
    assert status == 431
    assert b"GW-1050" in body and headers["connection"] == "close"


def test_heads_are_counted_per_request_on_a_kept_alive_connection(edge):
    """Many requests on one connection, together far beyond the head limit, each well within
    it; and a large body after a small head is not head."""
    conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    try:
        for _ in range(20):
            conn.request("GET", "/healthz", headers={"X-Pad": "a" * 8000})
            answer = conn.getresponse()
            assert answer.status == 200
            answer.read()
        body = b'{"resourceType":"Patient","name":[{"text":"' + b"x" * 200_000 + b'"}]}'
        conn.request("POST", "/fhir/Patient", body, {"content-type": "application/fhir+json"})
        created = conn.getresponse()
        assert created.status == 201, created.read()[:300]
    finally:
        conn.close()
