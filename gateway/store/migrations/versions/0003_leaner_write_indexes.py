"""leaner indexes for writes, ordered for paging

Revision ID: 0003
Revises: 0002

Every index is paid for on every write (~12 index rows per resource). This revision
- merges the two reference indexes into one keyed by target (value searches, reverse
  references, chains and _has all start from the target id), ending in res_id so a page
  ordered by id streams from it;
- keys the token value index (type, param, code, id, system): `code=x` and `system|code`
  pages stream in id order, and the system is checked inside the index;
- makes the identifier and absolute-URL reference indexes partial (most references have
  neither);
- drops the outbox's published index: the relay deletes what it publishes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _partial(column: str) -> dict:
    cond = sa.text(f"{column} IS NOT NULL")
    return {"postgresql_where": cond, "sqlite_where": cond}


def upgrade() -> None:
    op.drop_index("ix_idx_reference_value", table_name="idx_reference")
    op.drop_index("ix_idx_reference_target", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_target",
        "idx_reference",
        ["target_id", "target_type", "res_type", "param", "res_id"],
    )
    op.drop_index("ix_idx_reference_ident", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_ident",
        "idx_reference",
        ["res_type", "param", "ident_value"],
        **_partial("ident_value"),
    )
    op.drop_index("ix_idx_reference_url", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_url", "idx_reference", ["res_type", "param", "url"], **_partial("url")
    )
    op.drop_index("ix_idx_token_value", table_name="idx_token")
    op.create_index(
        "ix_idx_token_value", "idx_token", ["res_type", "param", "code", "res_id", "system"]
    )
    op.drop_index("ix_outbox_unpublished", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_unpublished", "outbox", ["published", "seq"])
    op.drop_index("ix_idx_token_value", table_name="idx_token")
    op.create_index("ix_idx_token_value", "idx_token", ["res_type", "param", "code", "system"])
    op.drop_index("ix_idx_reference_url", table_name="idx_reference")
    op.create_index("ix_idx_reference_url", "idx_reference", ["res_type", "param", "url"])
    op.drop_index("ix_idx_reference_ident", table_name="idx_reference")
    op.create_index("ix_idx_reference_ident", "idx_reference", ["res_type", "param", "ident_value"])
    op.drop_index("ix_idx_reference_target", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_target", "idx_reference", ["target_id", "target_type", "param"]
    )
    op.create_index(
        "ix_idx_reference_value", "idx_reference", ["res_type", "param", "target_id", "target_type"]
    )
