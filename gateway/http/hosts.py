"""The Host header, checked: links the gateway writes (Location, Bundle.fullUrl, paging) are
built from it when no public base URL is set, so a host outside the configured list gets a
400 OperationOutcome before any handler runs (Host-header injection, cache poisoning)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.adapter import error_response
from gateway.vocab import outcomes

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: list[str]):
        self.app = app
        self.exact = {h.lower() for h in [*allowed, *LOOPBACK_HOSTS] if not h.startswith("*.")}
        # "*.example.cn" allows any subdomain of example.cn (not example.cn itself)
        self.suffixes = tuple(h[1:].lower() for h in allowed if h.startswith("*."))

    def allows(self, host_header: str) -> bool:
        host = host_header.lower()
        if host.startswith("["):  # [::1]:8080
            host = host[1 : host.find("]")] if "]" in host else host
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        err = outcomes.bad_request(
            f"Host {host!r} is not one this gateway serves", "Host", gw="GW-1047"
        )
        await error_response(err)(scope, receive, send)
