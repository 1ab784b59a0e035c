"""How uvicorn serves the gateway (`gateway serve` and the live-server tests alike), and the
HTTP server's own answers in FHIR: a request the HTTP parser refuses (malformed
request line or headers, request smuggling attempts, broken chunked encoding) never reaches
the application, and uvicorn answers it with a plain-text 400. This protocol keeps uvicorn's
parsing (httptools) and its behaviour (400, connection closed) and only shapes that answer as
an OperationOutcome."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.settings import Settings
from gateway.vocab import json_io, outcomes

_BAD_REQUEST = json_io.dumps(
    outcomes.bad_request(
        "The request is not valid HTTP/1.1 (request line, headers or chunked body)",
        gw="GW-1049",
    ).outcome()
)


class FhirHttpProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/fhir+json; charset=utf-8\r\n",
                b"content-length: " + str(len(_BAD_REQUEST)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                _BAD_REQUEST,
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
