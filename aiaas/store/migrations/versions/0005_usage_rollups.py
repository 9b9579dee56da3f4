"""Daily usage rollups: ``usage_daily`` holds the exact totals of raw usage rows past their retention.

The rollup (``aiaas.service.governance.rollup``) moves raw ``usage_records`` older than
``AIAAS_USAGE_RETENTION_DAYS`` into one row per (UTC day, tenant, key, model) and deletes them in the same
transaction, so ``/v1/usage`` sums far fewer rows and the database stops growing with every request.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
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
        "usage_daily",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("units_in", sa.Float(), nullable=False),
        sa.Column("units_out", sa.Float(), nullable=False),
        sa.Column("compute_s", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),  # the sum, so averages stay exact
        sa.UniqueConstraint("day", "tenant_id", "key_id", "model", name="uq_usage_daily_group"),
    )
    op.create_index("ix_usage_daily_tenant_day", "usage_daily", ["tenant_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_usage_daily_tenant_day", table_name="usage_daily")
    op.drop_table("usage_daily")
