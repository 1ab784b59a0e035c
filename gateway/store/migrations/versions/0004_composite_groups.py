"""composite search parameters: a group column on every index table

Revision ID: 0004
Revises: 0003

A composite parameter (`component-code-value-quantity=http://loinc.org|8480-6$gt100`) holds
when all of its components match within one element of its base (one Observation.component).
Its components are indexed as ordinary rows of their own types under `code$0`, `code$1`, …,
and `grp` numbers the element they came from; the search joins the components on it. Rows of
ordinary parameters leave it NULL (no storage on PostgreSQL beyond the null bitmap).
Resources stored before this revision gain composite rows on `gateway reindex`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("token", "string", "date", "number", "quantity", "reference", "uri")


def upgrade() -> None:
    for kind in TABLES:
        op.add_column(f"idx_{kind}", sa.Column("grp", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    for kind in TABLES:
        with op.batch_alter_table(f"idx_{kind}") as batch:
            batch.drop_column("grp")
