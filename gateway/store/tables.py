"""Schema: current resources, every version, one index table per search-parameter type, outbox.

Times are integer microseconds since the Unix epoch (UTC): the same arithmetic and ordering on
SQLite and PostgreSQL, no timezone ambiguity. Open-ended date ranges use the MIN/MAX sentinels.
Content is each version's JSON exactly as stored (bytes); reads serve it without re-serialising.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

TIME_MIN = -(2**62)
TIME_MAX = 2**62

resources = Table(
    "resources",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=False),
    Index("ix_resources_type_updated", "res_type", "last_updated"),
)

history = Table(
    "resource_history",
    metadata,
    # Insertion order: keyset paging of history bundles stays stable while data changes.
    Column("hid", AutoId, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    # POST | PUT | PATCH | DELETE: how this version came to be (history entry.request.method).
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=False),
    Column("principal", String(256)),
    Index("ux_history_version", "res_type", "res_id", "version", unique=True),
    Index("ix_history_type_hid", "res_type", "hid"),
)


def _index_table(name: str, *value_columns: Column, value_index: tuple[str, ...] | None) -> Table:
    value = (
        [Index(f"ix_idx_{name}_value", "res_type", "param", *value_index)] if value_index else []
    )
    return Table(
        f"idx_{name}",
        metadata,
        Column("res_type", String(64), nullable=False),
        Column("res_id", String(64), nullable=False),
        Column("param", String(128), nullable=False),
        *value_columns,
        # Composite parameters' component rows: the element they came from (migration 0004).
        Column("grp", SmallInteger),
        Index(f"ix_idx_{name}_resource", "res_type", "res_id"),
        *value,
    )


idx_token = _index_table(
    "token",
    Column("system", Text),
    Column("code", Text),
    Column("text", Text),
    # Ends in res_id: a page of `code=x` or `system|code` matches streams in id order.
    # PostgreSQL keeps extended statistics on (res_type, param, code, system): migration 0004.
    value_index=("code", "res_id", "system"),
)
idx_string = _index_table(
    "string",
    Column("norm", Text, nullable=False),
    Column("exact", Text, nullable=False),
    value_index=("norm", "res_id"),
)
idx_date = _index_table(
    "date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    value_index=("low", "high", "res_id"),
)
idx_number = _index_table(
    "number",
    Column("value", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    value_index=("value", "res_id"),
)
idx_quantity = _index_table(
    "quantity",
    Column("value", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("system", Text),
    Column("code", Text),
    Column("unit", Text),
    Column("canon_value", Float),
    Column("canon_code", Text),
    value_index=("value", "res_id"),
)
idx_reference = _index_table(
    "reference",
    Column("target_type", String(64)),
    Column("target_id", String(64)),
    Column("url", Text),
    Column("version", Text),
    Column("ident_system", Text),
    Column("ident_value", Text),
    value_index=None,  # ix_idx_reference_target below serves value searches too
)
idx_uri = _index_table("uri", Column("uri", Text, nullable=False), value_index=("uri", "res_id"))

# Search indexes of migrations 0002 and 0003. References are found by target for value
# searches, chains, _revinclude, _has and $everything alike (ending in res_id: pages stream in
# id order); :identifier and absolute URLs through partial indexes (most rows have neither).
Index(
    "ix_idx_reference_target",
    idx_reference.c.target_id,
    idx_reference.c.target_type,
    idx_reference.c.res_type,
    idx_reference.c.param,
    idx_reference.c.res_id,
)
for _name, _col in (("ix_idx_reference_ident", "ident_value"), ("ix_idx_reference_url", "url")):
    _present = idx_reference.c[_col].is_not(None)
    Index(
        _name,
        idx_reference.c.res_type,
        idx_reference.c.param,
        idx_reference.c[_col],
        postgresql_where=_present,
        sqlite_where=_present,
    )
Index(
    "ix_idx_date_high",
    idx_date.c.res_type,
    idx_date.c.param,
    idx_date.c.high,
    idx_date.c.low,
    idx_date.c.res_id,
)
for _name, _table, _col in (
    ("ix_idx_string_prefix", idx_string, "norm"),
    ("ix_idx_token_text", idx_token, "text"),
    ("ix_idx_uri_prefix", idx_uri, "uri"),
):
    Index(
        _name,
        _table.c.res_type,
        _table.c.param,
        _table.c[_col],
        _table.c.res_id,
        postgresql_ops={_col: "text_pattern_ops"},
    ).ddl_if(dialect="postgresql")

# Composite and `near` rows (grp set; migration 0004): partial indexes holding the group, so
# matching components join from the indexes alone (index-only scans); ordinary rows skip them.
GROUP_INDEXES = {
    "token": ("code", "res_id", "grp", "system"),
    "string": ("norm", "res_id", "grp"),
    "date": ("low", "high", "res_id", "grp"),
    "number": ("value", "res_id", "grp"),
    "quantity": ("value", "res_id", "grp"),
    "reference": ("target_id", "target_type", "res_id", "grp"),
    "uri": ("uri", "res_id", "grp"),
}
for _kind, _cols in GROUP_INDEXES.items():
    _table = metadata.tables[f"idx_{_kind}"]
    _grouped = _table.c.grp.is_not(None)
    Index(
        f"ix_idx_{_kind}_group",
        _table.c.res_type,
        _table.c.param,
        *(_table.c[c] for c in _cols),
        postgresql_where=_grouped,
        sqlite_where=_grouped,
    )

INDEX_TABLES: dict[str, Table] = {
    "token": idx_token,
    "string": idx_string,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "reference": idx_reference,
    "uri": idx_uri,
}

outbox = Table(
    "outbox",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # create | update | delete
    Column("created_at", BigInteger, nullable=False),
    Column("principal", String(256)),
    # Always false since migration 0003: the relay deletes the rows it publishes.
    Column("published", Boolean, nullable=False, default=False),
)

# --- authentication (gateway/auth; migration 0005) --------------------------------------------
# Registered backend-services clients (SMART): each bound to an Organization and a role.
auth_clients = Table(
    "auth_clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("organization", String(128), nullable=False),  # Organization/<id>
    Column("role", String(32), nullable=False),
    Column("jwks", Text),  # the client's JWK Set (public keys), or
    Column("jwks_uri", Text),  # where to fetch it
    Column("scopes", Text),  # space-separated scopes it may be granted; NULL: its role's
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
)
# The gateway's own token-signing keys: the newest signs, the others verify until their tokens
# have expired (rotation shared by every replica through the database).
auth_keys = Table(
    "auth_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_jwk", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
# Client-assertion ids seen, until they expire: a replayed assertion is refused (the database
# keeps them when no Redis is configured).
auth_jti = Table(
    "auth_jti",
    metadata,
    Column("jti", String(512), primary_key=True),  # client_id + " " + jti
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_auth_jti_expires", "expires_at"),
)

# --- Bulk Data jobs (gateway/bulk; migration 0006) ---------------------------------------------
# One row per $export / $import job: who started it (files are served to that client only, and
# the export runs under its access), what it asked for, how far it got (a per-type cursor
# committed with the lines it covers: a restarted worker neither repeats nor loses a line) and
# which worker holds it (a lease; an expired lease lets another worker take the job over).
bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # export | import
    Column("status", String(16), nullable=False),  # queued | running | completed | failed | …
    Column("owner", String(256), nullable=False),  # the client (principal) that started it
    Column("organization", String(128)),
    Column("role", String(32)),
    Column("scopes", Text),  # space-separated: the token's scopes at kick-off
    Column("request", Text, nullable=False),  # the kick-off URL (manifest `request`)
    Column("spec", Text, nullable=False),  # JSON: level, types, _since, _typeFilter, patients…
    Column("state", Text, nullable=False),  # JSON: type index, cursor, current file part
    Column("transaction_time", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("lease_owner", String(128)),
    Column("lease_until", BigInteger),
    Column("turn", BigInteger, nullable=False),  # when it last had a worker: fair rotation
    Column("error", Text),  # the OperationOutcome of a failed job
    Index("ix_bulk_jobs_status_turn", "status", "turn"),
    Index("ix_bulk_jobs_owner", "owner", "status"),
)
# The NDJSON files of a job: outputs per type (split at a size) and OperationOutcome files.
bulk_files = Table(
    "bulk_files",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),  # output | error
    Column("res_type", String(64), nullable=False),
    Column("part", Integer, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
)
# A file's bytes, in chunks written with the cursor that covers them (one transaction) and
# served one chunk at a time (constant memory on both sides).
bulk_chunks = Table(
    "bulk_chunks",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)
