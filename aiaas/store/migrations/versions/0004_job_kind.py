"""Job kinds: ``training_jobs.kind`` ("training" | "optimization").

Optimization jobs run on the training jobs' machinery (scheduler, runner, states, events, recovery), so they
share its table; the new column tells them apart. Existing rows are training jobs: the column is added with a
server default, so a database from 0003 keeps every job valid.

Revision ID: 0004
Revises: 0003
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("training_jobs", sa.Column("kind", sa.String(16), nullable=False, server_default="training"))
    op.create_index("ix_training_jobs_kind_tenant_created", "training_jobs", ["kind", "tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_training_jobs_kind_tenant_created", table_name="training_jobs")
    with op.batch_alter_table("training_jobs") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("kind")
