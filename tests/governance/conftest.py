"""Fixtures: a fresh governance database per test on SQLite and on the real PostgreSQL, Redis with a unique
key prefix per test, and ready-made governance/admin services with a bootstrap admin."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import Principal
from aiaas.service.governance.service import DbGovernance
from aiaas.store.db import Store

PG_URL = os.environ.get("AIAAS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AIAAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_SECRET = "operator-bootstrap-secret-0123456789"


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


PG_OK = _pg_available()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class DbTarget:
    """Where one test's database lives: a URL plus, on PostgreSQL, a private schema."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.url, self.schema = url, schema

    def store(self) -> Store:
        return Store(self.url, schema=self.schema)

    @property
    def url_with_schema(self) -> str:
        """The same database as one URL (PostgreSQL: search_path through libpq options)."""
        if self.schema is None:
            return self.url
        return f"{self.url}?options=-csearch_path%3D{self.schema}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_OK, reason="no PostgreSQL"))]
)
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbTarget]:
    if request.param == "sqlite":
        yield DbTarget(f"sqlite:///{tmp_path / 'gov.db'}", None)
        return
    schema = f"gov_test_{uuid.uuid4().hex[:12]}"
    yield DbTarget(PG_URL, schema)
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def store(db_target: DbTarget) -> Iterator[Store]:
    store = db_target.store()
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    import redis

    prefix = f"aiaas-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def gov(store: Store) -> AsyncIterator[DbGovernance]:
    governance = DbGovernance(store, key_cache_ttl_s=5.0, refresh_s=5.0)
    governance.bootstrap_admin(ADMIN_SECRET)
    await governance.start()
    yield governance
    await governance.close()


@pytest.fixture
def admin(store: Store, gov: DbGovernance) -> GovernanceAdmin:
    return GovernanceAdmin(store, gov)


@pytest.fixture
async def root(gov: DbGovernance) -> Principal:
    return await gov.authenticate(f"Bearer {ADMIN_SECRET}")
