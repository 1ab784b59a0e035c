"""FhirRequest / FhirResponse: the values the core works on, independent of any web framework."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gateway.vocab.context import RequestContext


@dataclass(slots=True)
class FhirRequest:
    method: str
    # Path below the FHIR base, without leading/trailing slashes: "Patient/1/_history/2".
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    # Lower-cased header names.
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    # Parsed JSON body, when a caller (bundle processing) already has it.
    json_body: Any = None
    base_url: str = "http://localhost/fhir"
    context: RequestContext = field(default_factory=RequestContext)
    # True when this request is an entry of a batch/transaction Bundle.
    in_bundle: bool = False
    # FHIRPath prefix for error locations, e.g. "Bundle.entry[3].resource" for a bundle entry.
    where: str = ""

    @classmethod
    def from_url(cls, method: str, url: str, **kw: Any) -> FhirRequest:
        """Build from a relative URL as written in Bundle.entry.request.url."""
        path, _, qs = url.partition("?")
        return cls(method=method, path=path.strip("/"), query=parse_qsl(qs, True), **kw)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]

    def param(self, name: str) -> str | None:
        vals = self.params(name)
        return vals[-1] if vals else None

    def query_string(self, exclude: tuple[str, ...] = ()) -> str:
        return urlencode([(k, v) for k, v in self.query if k not in exclude])


@dataclass(slots=True)
class FhirResponse:
    status: int = 200
    # Either ready JSON bytes (stored resource, assembled bundle) or a dict to serialise.
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
