"""subscriptions: delivery state and each subscription's numbered events

Revision ID: 0007
Revises: 0006

Tables of gateway.subscriptions (see gateway/subscriptions/tables.py): `sub_state` (per
Subscription: status, owner, event counter, delivered up to, failures, retry time, the lease
of the worker delivering it) and `sub_events` (numbered events per subscription: pending,
delivered, dead-lettered).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sub_state",
        sa.Column("sub_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(256)),
        sa.Column("events_total", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.BigInteger(), nullable=False),
        sa.Column("last_sent", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text()),
    )
    op.create_table(
        "sub_events",
        sa.Column("sub_id", sa.String(64), primary_key=True),
        sa.Column("number", sa.BigInteger(), primary_key=True),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("topic_events", sa.Text()),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ux_sub_events_version",
        "sub_events",
        ["sub_id", "res_type", "res_id", "version"],
        unique=True,
    )
    op.create_index("ix_sub_events_state", "sub_events", ["sub_id", "state", "number"])


def downgrade() -> None:
    op.drop_index("ix_sub_events_state", "sub_events")
    op.drop_index("ux_sub_events_version", "sub_events")
    op.drop_table("sub_events")
    op.drop_table("sub_state")
