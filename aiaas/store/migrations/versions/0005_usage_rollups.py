"""Hourly usage totals: ``usage_hourly`` holds the exact totals of the usage rows of each UTC hour.

The usage writer (``aiaas.service.governance.usage``) adds every batch of raw ``usage_records`` to one row
per (UTC hour, tenant, key, model) in the same transaction, so ``/v1/usage`` sums whole hours from this small
table and raw rows only for the partial hours at its range's edges; the retention job
(``aiaas.service.governance.rollup``) can then delete raw rows past ``AIAAS_USAGE_RETENTION_DAYS`` without
losing any total. The upgrade fills the table from the raw rows already stored.

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

_HOUR = {  # the start of a row's UTC hour, in the form SQLAlchemy stores a DateTime in on each backend
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', created_at)",
    "postgresql": "date_trunc('hour', created_at)",
}


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("hour", sa.DateTime(), nullable=False),
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
        sa.UniqueConstraint("hour", "tenant_id", "key_id", "model", name="uq_usage_hourly_group"),
    )
    op.create_index("ix_usage_hourly_tenant_hour", "usage_hourly", ["tenant_id", "hour"])
    hour = _HOUR[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO usage_hourly (hour, tenant_id, key_id, model, requests, errors, units_in, units_out, "
        "compute_s, cost, latency_ms) "
        f"SELECT {hour}, tenant_id, key_id, model, count(*), sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
        "coalesce(sum(units_in), 0), coalesce(sum(units_out), 0), coalesce(sum(compute_s), 0), "
        "coalesce(sum(cost), 0), coalesce(sum(latency_ms), 0) "
        f"FROM usage_records GROUP BY {hour}, tenant_id, key_id, model"
    )


def downgrade() -> None:
    op.drop_index("ix_usage_hourly_tenant_hour", table_name="usage_hourly")
    op.drop_table("usage_hourly")
