"""Settings from the environment (prefix GATEWAY_) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # Embedded default: SQLite file under ./data. PostgreSQL: postgresql://user@host/db
    database_url: str = "sqlite+aiosqlite:///./data/gateway.db"
    # Unset: in-process event bus. Set (redis://host:6379/0): events go to a Redis Stream.
    redis_url: str | None = None
    # Absolute base URL clients see (behind a proxy); default: derived from each request.
    public_base_url: str | None = None
    # Host header values accepted (others: 400), so links never point at a host a client
    # made up; serving beyond loopback needs these or public_base_url (a JSON list).
    allowed_hosts: list[str] = []
    base_path: str = "/fhir"
    # Real transaction bundles reach tens of MB (a Synthea patient is 1–5 MB); 1 MB caps break them.
    max_body_bytes: int = 256 * 1024 * 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    # Searches count their matches for Bundle.total up to this many (beyond: no total unless
    # _total=accurate or _total=estimate is asked for).
    search_total_limit: int = 10_000
    # Unknown or unsupported search parameters: "lenient" ignores them (a warning in the
    # Bundle's outcome entry; R4 search.html: servers SHOULD), "strict" answers 400. A client
    # chooses per request with `Prefer: handling=strict|lenient`.
    search_handling: Literal["lenient", "strict"] = "lenient"
    # Where our profiles, SearchParameters and policy packs live.
    profiles_dir: Path = PROJECT_ROOT / "profiles"
    db_pool_size: int = 10
    # Deadlines (seconds): a statement (PostgreSQL cancels it; SQLite waits that long for its
    # write lock), and a request waiting for a pooled connection: past them, 503 Retry-After.
    db_statement_timeout: float = 30.0
    db_pool_timeout: float = 10.0
    # Work in flight per process: requests with a body handled at once, and their bodies'
    # bytes together; beyond either a request waits 2 s for room, then gets 503 Retry-After.
    max_inflight_writes: int = 16
    max_inflight_bytes: int = 512 * 1024 * 1024
    # Slow clients: a request body must arrive within this many seconds (else 408); open
    # connections per process beyond max_connections get 503 from the server itself; an idle
    # keep-alive connection is closed after keep_alive_timeout. Facing the internet, put the
    # reverse proxy of docker-compose.yml in front (header and body timeouts per read).
    body_read_timeout: float = 60.0
    max_connections: int = 1000
    keep_alive_timeout: int = 5
    # Processes validating large transaction bundles in parallel, per server worker (unset: the
    # cores divided among the workers; below 2: inline, in the worker itself).
    validation_workers: int | None = None
    # Profile validation on write: "default" (claimed profiles + our domain profiles for resources
    # carrying our marks), "cn" (as default, and every Patient, Organization, Practitioner(Role)
    # held to the CN profiles), "claimed" (only meta.profile claims), "off" (no profiles).
    profile_validation: str = "default"
    # Resources no profile applies to are validated against the R4 core definitions (required
    # bindings, invariants, reference targets); off: structure only for them.
    core_validation: bool = True
    # Strict: a claimed profile the gateway does not know is an error, not a warning.
    strict_profiles: bool = False
    # An extension defined nowhere the gateway knows (not ours, not R4 core, not a definition
    # put in profiles/): "warning" accepts it after checking its structure, "error" refuses it.
    unknown_extensions: Literal["warning", "error"] = "warning"
    # HTML tags in string/markdown values (a risk where they are rendered as HTML): reported as
    # information; true makes them errors (the reference validator's security checks).
    security_checks: bool = False
    log_level: str = "info"

    # --- authentication and access (gateway/auth, gateway/access) ---
    # "on": every request but the CapabilityStatement and the SMART configuration needs an
    # access token, and the access policies apply. "off" (development): nothing is checked;
    # refused unless the gateway listens on loopback only.
    auth: Literal["on", "off"] = "off"
    auth_token_lifetime: int = 300  # seconds an access token lives
    auth_key_rotation: int = 86_400  # seconds before a new signing key replaces the current one
    auth_clock_skew: int = 60  # seconds of clock difference tolerated on exp/nbf/iat
    # Tokens of a region's identity provider, accepted when its issuer is configured.
    auth_idp_issuer: str | None = None
    auth_idp_jwks_url: str | None = None
    auth_idp_audience: str | None = None
    auth_idp_claim_client: str = "client_id"
    auth_idp_claim_organization: str = "organization"
    auth_idp_claim_role: str = "role"
    auth_idp_claim_scope: str = "scope"
    # The access policies; default: profiles_dir/policy/access.yaml.
    access_policy: Path | None = None
    # With authentication on, an AuditEvent for every request (and a Provenance for every
    # write). Off only where another system keeps the access log: it costs a write per read.
    audit: bool = True
    # Requests a client may make per minute with authentication on (0: no limit).
    rate_limit_per_minute: int = 6000
    # Browser origins allowed by CORS (besides http(s)://localhost and 127.0.0.1 on any port,
    # always allowed for development); a JSON list in the environment.
    cors_origins: list[str] = []
    # Prefix of every Redis key and stream the gateway uses (events stream, job queues,
    # subscription state): several gateways, or test runs, can share one Redis apart.
    redis_prefix: str = "gateway"
    # Background work (subscription delivery, bulk jobs) in the gateway process itself:
    # "auto" runs it in-process on the embedded default (no Redis) and leaves it to
    # `gateway worker` processes when Redis is configured.
    worker_inline: Literal["auto", "on", "off"] = "auto"

    def runs_worker_inline(self) -> bool:
        return self.worker_inline == "on" or (self.worker_inline == "auto" and not self.redis_url)
