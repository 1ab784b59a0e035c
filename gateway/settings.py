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
    # Log lines of `gateway serve` and `gateway worker`: "json" (one object a line, with the
    # request id; for log pipelines) or "text" (for people). Identity numbers masked in both.
    log_format: Literal["text", "json"] = "text"
    # OpenTelemetry traces: "auto" exports them when an exporter is configured (the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, …) and the SDK is installed; "off".
    tracing: Literal["auto", "off"] = "auto"
    # `gateway worker`: serve its metrics (subscription deliveries, export jobs) on this port.
    worker_metrics_port: int | None = None

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

    # --- Bulk Data (gateway/bulk) ---
    # An export's NDJSON output is split into files of at most this many bytes per type.
    bulk_file_max_bytes: int = 64 * 1024 * 1024
    # Resources read and committed (with the job's cursor) at a time.
    bulk_page_size: int = 500
    # Seconds a worker spends on one job before turning to the next (fair sharing).
    bulk_slice_seconds: float = 2.0
    # Seconds a worker's claim on a job lasts without renewal (a dead worker's job is taken
    # over after this).
    bulk_lease_seconds: float = 30.0
    # Seconds between looks for new, abandoned and expired jobs.
    bulk_poll_interval: float = 1.0
    # Seconds a finished job's files are kept (manifest `Expires`), then deleted.
    bulk_retention: int = 86_400
    # Jobs one client may have queued or running at once (beyond: 429).
    bulk_max_jobs_per_client: int = 4
    # Retry-After (seconds) on a status request while the job runs.
    bulk_retry_after: int = 2
    # $import reads NDJSON files under this directory only (unset: $import is refused).
    bulk_import_dir: Path | None = None

    # --- subscriptions (gateway/subscriptions) ---
    # Failed deliveries in a row before a subscription goes to `error`; its pending
    # notifications then wait in the dead-letter list (POST Subscription/{id}/$replay).
    subscription_max_failures: int = 8
    # Retry delays (seconds): the first, doubled after each failure up to the cap, with jitter.
    subscription_retry_base: float = 1.0
    subscription_retry_max: float = 300.0
    # Seconds a receiver may take to answer a notification (a channel's backport-timeout wins).
    subscription_timeout: float = 10.0
    # Seconds a worker holds a subscription's delivery (renewed while it delivers): a killed
    # worker's subscriptions pass to another after this long.
    subscription_lease: float = 30.0
    # Seconds between sweeps for retries, handshakes, heartbeats and leases left by dead workers.
    subscription_poll: float = 1.0
    # Events in one notification Bundle at most (a channel's backport-max-count wins).
    subscription_batch: int = 100
    # Seconds an event read from the Redis Stream by a worker that died waits before another
    # worker takes it over (XAUTOCLAIM).
    subscription_claim_idle: float = 30.0

    # --- HL7 v2 over MLLP (`gateway mllp`, gateway/mllp.py) ---
    # Where the MLLP listener binds (no authentication of its own: the hospital network's
    # interface, loopback by default) and the largest message it reads.
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_max_message_bytes: int = 16 * 1024 * 1024
    # `gateway mllp` processes listening on the one port (SO_REUSEPORT: the kernel spreads
    # the connections); each its own event loop, group commit and validation share of cores.
    mllp_workers: int = 1

    def runs_worker_inline(self) -> bool:
        return self.worker_inline == "on" or (self.worker_inline == "auto" and not self.redis_url)
