"""JWK Sets fetched from a URL (a client's `jwks_uri`, an identity provider's JWKS) with httpx,
cached for a while and fetched again when a token names a key id not in the cached set (the
owner rotated)."""

from __future__ import annotations

import time

import httpx
from joserfc.jwk import KeySet

_TTL_SECONDS = 300.0
_MIN_REFETCH_SECONDS = 10.0  # a flood of unknown kids must not become a flood of fetches


class RemoteKeys:
    def __init__(self, http: httpx.AsyncClient):
        self.http = http
        self._cache: dict[str, tuple[float, KeySet]] = {}

    async def keyset(self, url: str, kid: str | None = None) -> KeySet:
        now = time.monotonic()
        hit = self._cache.get(url)
        if hit is not None:
            fetched, keys = hit
            known = kid is None or any(k.kid == kid for k in keys.keys)
            if (known and now - fetched < _TTL_SECONDS) or now - fetched < _MIN_REFETCH_SECONDS:
                return keys
        response = await self.http.get(url, timeout=10.0)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
        self._cache[url] = (now, keys)
        return keys
