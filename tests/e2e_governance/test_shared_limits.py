"""Two app instances (two replicas) on one PostgreSQL schema share rate and concurrency limits through the real
Redis: what both together allow is the limit, not twice the limit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from security.kit import GATE_X, PG_OK, REDIS_URL, ROOT, X, auth, error_message, settings_for, wait_for

from aiaas.server.app import create_app

from .conftest import REDIS_OK, Site

pytestmark = pytest.mark.skipif(not (PG_OK and REDIS_OK), reason="needs the real PostgreSQL and Redis")


@pytest.mark.parametrize("site", ["postgresql"], indirect=True)
def test_two_instances_share_one_limit_through_redis(site: Site, redis_prefix: str) -> None:
    def replica() -> TestClient:
        settings = settings_for(site.home, site.database_url, redis_url=REDIS_URL, redis_prefix=redis_prefix)
        return TestClient(create_app(settings))

    with replica() as a, replica() as b:
        # Both replicas run before the key exists: replica b learns the key and its limits from the database.
        assert a.post("/v1/tenants", json={"name": "acme"}, headers=ROOT).status_code == 201
        made = a.post("/v1/keys", json={"tenant": "acme"}, headers=ROOT).json()
        assert a.put(f"/v1/limits/key/{made['id']}", json={"requests_per_minute": 5}, headers=ROOT).status_code == 200
        key = auth(made["key"])

        results = []
        for i in range(12):
            r = (a, b)[i % 2].post("/v2/models/pub/infer", json=X, headers=key)
            results.append((i % 2, r))
        statuses = [r.status_code for _, r in results]
        assert statuses.count(200) == 5 and statuses.count(429) == 7, statuses
        assert {side for side, r in results if r.status_code == 200} == {0, 1}  # both replicas served some
        for _, r in results:
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining-requests"] == "0"

        # The state lives in Redis under this test's prefix (and nowhere else).
        client = redis.Redis.from_url(REDIS_URL)
        try:
            assert client.exists(f"{redis_prefix}r:key:{made['id']}") == 1

            # Concurrency: a request held on replica a takes the only slot for replica b too.
            slot = a.post("/v1/keys", json={"tenant": "acme"}, headers=ROOT).json()
            assert a.put(f"/v1/limits/key/{slot['id']}", json={"concurrency": 1}, headers=ROOT).status_code == 200
            held = auth(slot["key"])
            site.gate.touch()
            outcome: dict[str, Any] = {}

            def slow() -> None:
                outcome["status"] = a.post("/v2/models/gate/infer", json=GATE_X, headers=held).status_code

            thread = threading.Thread(target=slow, daemon=True)
            thread.start()
            try:
                wait_for(lambda: client.zcard(f"{redis_prefix}c:key:{slot['id']}") == 1, what="the slot in Redis")
                r = b.post("/v2/models/pub/infer", json=X, headers=held)
                assert r.status_code == 429 and "concurrency" in error_message(r), r.text
            finally:
                site.gate.unlink(missing_ok=True)
                thread.join(30)
            assert outcome.get("status") == 200
            assert b.post("/v2/models/pub/infer", json=X, headers=held).status_code == 200  # the slot came back
            assert client.zcard(f"{redis_prefix}c:key:{slot['id']}") == 0
        finally:
            client.close()
