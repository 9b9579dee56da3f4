"""Key expiry and a usage index: ``api_keys.expires_at`` and ``usage_records(tenant_id, created_at)``.

Keys created before this revision keep working and never expire (NULL). The index serves the usage queries,
which always filter one tenant over a time range.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.create_index("ix_usage_tenant_created", "usage_records", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_tenant_created", table_name="usage_records")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
