"""Fixtures of the end-to-end governance tests: a home with the security zoo on SQLite and on PostgreSQL, and
a Redis key prefix per test whose keys are deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from security.kit import BACKENDS, PG_OK, REDIS_URL, build_zoo, database


def _redis_ok() -> bool:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


REDIS_OK = _redis_ok()


@dataclass
class Site:
    """One aiaas home (models + SQLite, or a fresh PostgreSQL schema) and its gate file."""

    home: Path
    database_url: str | None
    gate: Path


@pytest.fixture(
    params=[
        p if p == "sqlite" else pytest.param(p, marks=pytest.mark.skipif(not PG_OK, reason="no PostgreSQL"))
        for p in BACKENDS
    ],
)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    home = tmp_path / "home"
    with database(request.param, home) as url:
        yield Site(home, url, build_zoo(home, tmp_path / "src"))


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
