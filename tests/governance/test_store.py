from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from aiaas.store.db import Store, current_revision, head_revision
from aiaas.store.models import ApiKey, Base, Tenant

from .conftest import DbTarget


def test_upgrade_keeps_data_of_an_older_database(db_target: DbTarget) -> None:
    store = db_target.store()
    try:
        store.upgrade("0001")
        assert current_revision(store.engine) == "0001"
        with store.engine.begin() as conn:
            columns = {c["name"] for c in _columns(conn, "api_keys")}
            assert "expires_at" not in columns  # revision 0001 really is the older schema
            conn.execute(text("INSERT INTO tenants (id, created_at) VALUES ('old', '2024-01-02 03:04:05')"))
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, tenant_id, role, secret_hash, created_at) "
                    "VALUES ('0123456789ab', 'old', 'user', :h, '2024-01-02 03:04:05')"
                ),
                {"h": "ab" * 32},
            )
        store.upgrade()
        assert (
            current_revision(store.engine) == head_revision()
        )  # 0003: files and training tables, 0004: job kinds, ...
        with store.session() as session:
            key = session.scalars(select(ApiKey)).one()
            assert (key.id, key.tenant_id, key.secret_hash, key.expires_at) == ("0123456789ab", "old", "ab" * 32, None)
            assert session.get(Tenant, "old") is not None
        with store.engine.connect() as conn:
            indexes = {i["name"] for i in _indexes(conn, "usage_records")}
        assert "ix_usage_tenant_created" in indexes
        store.upgrade()  # idempotent at head
    finally:
        store.dispose()


def _columns(conn, table: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    from sqlalchemy import inspect

    return inspect(conn).get_columns(table)  # type: ignore[return-value]


def _indexes(conn, table: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    from sqlalchemy import inspect

    return inspect(conn).get_indexes(table)  # type: ignore[return-value]


def test_orm_models_match_the_migrations(store: Store) -> None:
    """The ORM classes and the migration head describe the same schema (no forgotten migration)."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x' / 'a.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        store.dispose()


def test_postgres_schema_name_is_validated() -> None:
    with pytest.raises(ValueError):
        Store("postgresql://postgres@127.0.0.1/test", schema='x"; DROP TABLE y; --')
