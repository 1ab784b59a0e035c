"""How uvicorn serves the gateway (`gateway serve` and the live-server tests alike), and the
HTTP server's own answers in FHIR. A request the HTTP parser refuses (malformed request line
or headers, request smuggling attempts, broken chunked encoding) never reaches the
application, and uvicorn answers it with a plain-text 400; a head of any size is read into
memory. This protocol keeps uvicorn's parsing (httptools) and its behaviour (answer, then
close the connection), shapes those answers as OperationOutcomes, and bounds the head (431)."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.settings import Settings
from gateway.vocab import json_io, outcomes

# Request line and headers together, per request: beyond it 431 (the parser itself has no
# limit, and would hold a header of any size in memory). Long searches belong in POST _search.
MAX_HEAD_BYTES = 64 * 1024


def _outcome(text: str, gw: str) -> bytes:
    return json_io.dumps(outcomes.bad_request(text, gw=gw).outcome())


_BAD_REQUEST = _outcome(
    "The request is not valid HTTP/1.1 (request line, headers or chunked body)", "GW-1049"
)
_HEAD_TOO_LARGE = _outcome(
    f"The request line and headers exceed {MAX_HEAD_BYTES // 1024} KB "
    "(a long search goes in the body of POST [type]/_search)",
    "GW-1050",
)


class FhirHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._in_head = True  # between requests, or reading one's request line and headers
        self._head_bytes = 0
        self._completed = 0  # requests read in full on this connection

    def data_received(self, data: bytes) -> None:
        was_in_head, completed = self._in_head, self._completed
        super().data_received(data)
        if was_in_head and self._in_head and completed == self._completed:
            # In one request's head before and after all of `data`: every byte of it was head
            # (a chunk that also ended a request is not counted: at most one read's worth).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self._answer(431, _HEAD_TOO_LARGE)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._completed += 1
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._answer(400, _BAD_REQUEST)

    def _answer(self, status: int, body: bytes) -> None:
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/fhir+json; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keyword arguments besides the app, host and port."""
    return {
        "proxy_headers": True,
        "http": FhirHttpProtocol,
        # Connections per process beyond this: 503 from the server (plain text: uvicorn's).
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_graceful_shutdown": 30,
    }
