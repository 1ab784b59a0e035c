"""authentication: registered clients, the gateway's signing keys, seen assertion ids

Revision ID: 0005
Revises: 0004

SMART backend-services clients are registered with `gateway clients add` (an Organization, a
role, a JWK Set or its URL); the gateway signs its access tokens with keys kept here so every
replica verifies every replica's tokens, and rotates them; client assertions' `jti` values are
kept until they expire so a replay is refused (in Redis instead when it is configured).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_clients",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("jwks", sa.Text()),
        sa.Column("jwks_uri", sa.Text()),
        sa.Column("scopes", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "auth_keys",
        sa.Column("kid", sa.String(128), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "auth_jti",
        sa.Column("jti", sa.String(512), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_auth_jti_expires", "auth_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_jti_expires", "auth_jti")
    op.drop_table("auth_jti")
    op.drop_table("auth_keys")
    op.drop_table("auth_clients")
