"""The security table of issue 3: every case, for every resource family, over HTTP, on SQLite and PostgreSQL.

One app per database backend (module scope) holds tenants ``acme`` and ``globex`` with developer and user
keys, plus keys that are revoked, expired, limited to 1 request/min, 1 unit/min or 1 request in flight, nearly
broke (budget 2 at 1.0 per request), and a key of tenant ``limited`` (1 request/min for the whole tenant).
Families: V2 metadata, ready, infer, stats, repository index/load/unload; the OpenAI-style model routes; and
the /v1 management routes for tenants, keys, limits, budgets, grants/owner, usage and audit. Each row of
``CASES`` sends one request and checks:

* the status (and, for limits and budgets, the headers and the message the issue asks for);
* **no side effect**: a snapshot of every governance table, the in-memory budget ledger, buffered usage and
  every model's state and inference count is identical before and after;
* for cross-tenant rows, the answer is byte-for-byte the answer for a resource that does not exist (with
  the name swapped), so a key cannot tell "hidden" from "absent".

A few read-only rows that must succeed show the refusals come from the case, not from a broken fixture.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .kit import (
    BACKENDS,
    GATE_X,
    PG_OK,
    ROOT,
    World,
    X,
    auth,
    database,
    error_message,
    make_world,
    wait_for,
)

NO_KEY_ID = "0123456789ab"  # well-formed, never issued


# -- the world ------------------------------------------------------------------------------------------------
@pytest.fixture(
    scope="module",
    params=[
        p if p == "sqlite" else pytest.param(p, marks=pytest.mark.skipif(not PG_OK, reason="no PostgreSQL"))
        for p in BACKENDS
    ],
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"security-{request.param}")
    with database(request.param, root / "home") as url, make_world(root / "home", root / "src", url) as w:
        for tenant in ("acme", "globex"):
            w.keys[f"{tenant}_dev"] = w.key(tenant, "developer")
            w.keys[f"{tenant}_user"] = w.key(tenant, "user")
        w.keys["revoked"] = w.key("acme")
        r = w.client.post(f"/v1/keys/{w.keys['revoked'].id}/revoke", headers=ROOT)
        assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
        w.keys["expired"] = w.key("acme", expires_days=0.3 / 86400)  # 0.3 s
        w.keys["rate"] = w.key("acme", limits={"requests_per_minute": 1})
        w.keys["conc"] = w.key("acme", limits={"concurrency": 1})
        w.keys["broke"] = w.key("acme", budget={"limit": 2, "period": "month"})
        w.keys["units"] = w.key("acme", limits={"units_per_minute": 1})
        assert w.client.post("/v1/tenants", json={"name": "limited"}, headers=ROOT).status_code == 201
        r = w.client.put("/v1/limits/tenant/limited", json={"requests_per_minute": 1}, headers=ROOT)
        assert r.status_code == 200, r.text
        w.keys["tenant_rate"] = w.key("limited")
        # Every key works before the table runs (so each refusal below is caused by its case).
        for name in ("acme_dev", "acme_user", "globex_dev", "globex_user", "conc"):
            r = w.client.get("/v2/models/pub/ready", headers=w.keys[name].headers)
            assert r.status_code == 200, (name, r.text)
        wait_for(
            lambda: w.client.get("/v2/models/pub", headers=w.keys["expired"].headers).status_code == 401,
            what="the short-lived key to expire",
        )
        yield w


# -- requests -----------------------------------------------------------------------------------------------
# op -> (method, path, query, body); {model} {tenant} {key} {name} {role} are filled per case.
OPS: dict[str, tuple[str, str, dict[str, str] | None, Any]] = {
    "v2.metadata": ("GET", "/v2/models/{model}", None, None),
    "v2.ready": ("GET", "/v2/models/{model}/ready", None, None),
    "v2.infer": ("POST", "/v2/models/{model}/infer", None, X),
    "v2.infer_version": ("POST", "/v2/models/{model}/versions/1/infer", None, X),
    "v2.stats": ("GET", "/v2/models/{model}/stats", None, None),
    "v2.stats_all": ("GET", "/v2/models/stats", None, None),
    "v2.index": ("POST", "/v2/repository/index", None, None),
    "v2.load": ("POST", "/v2/repository/models/{model}/load", None, None),
    "v2.unload": ("POST", "/v2/repository/models/{model}/unload", None, None),
    "openai.list": ("GET", "/v1/models", None, None),
    "openai.model": ("GET", "/v1/models/{model}", None, None),
    "openai.embeddings": ("POST", "/v1/embeddings", None, {"model": "{model}", "input": "hello"}),
    "openai.chat": (
        "POST",
        "/v1/chat/completions",
        None,
        {"model": "{model}", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "tenants.list": ("GET", "/v1/tenants", None, None),
    "tenants.read": ("GET", "/v1/tenants/{tenant}", None, None),
    "tenants.create": ("POST", "/v1/tenants", None, {"name": "{name}"}),
    "tenants.delete": ("DELETE", "/v1/tenants/{tenant}", None, None),
    "keys.list": ("GET", "/v1/keys", {"tenant": "{tenant}"}, None),
    "keys.read": ("GET", "/v1/keys/{key}", None, None),
    "keys.create": ("POST", "/v1/keys", None, {"tenant": "{tenant}", "role": "{role}"}),
    "keys.create_for_models": ("POST", "/v1/keys", None, {"tenant": "acme", "models": ["{model}"]}),
    "keys.create_expired": ("POST", "/v1/keys", None, {"tenant": "acme", "expires_days": 0}),
    "keys.revoke": ("POST", "/v1/keys/{key}/revoke", None, None),
    "keys.rotate": ("POST", "/v1/keys/{key}/rotate", None, None),
    "limits.key.read": ("GET", "/v1/limits/key/{key}", None, None),
    "limits.key.write": ("PUT", "/v1/limits/key/{key}", None, {"requests_per_minute": 100000}),
    "limits.tenant.read": ("GET", "/v1/limits/tenant/{tenant}", None, None),
    "limits.tenant.write": ("PUT", "/v1/limits/tenant/{tenant}", None, {"concurrency": 100000}),
    "budgets.key.read": ("GET", "/v1/budgets/key/{key}", None, None),
    "budgets.key.write": ("PUT", "/v1/budgets/key/{key}", None, {"limit": 1e9, "period": "total"}),
    "budgets.tenant.read": ("GET", "/v1/budgets/tenant/{tenant}", None, None),
    "budgets.tenant.write": ("PUT", "/v1/budgets/tenant/{tenant}", None, {"limit": 1e9}),
    "grants.create": ("POST", "/v1/models/{model}/grants/{tenant}", None, None),
    "grants.delete": ("DELETE", "/v1/models/{model}/grants/{tenant}", None, None),
    "owner.write": ("PUT", "/v1/models/{model}/owner", None, {"owner": "{tenant}", "public": True}),
    "usage.tenant": ("GET", "/v1/usage", {"tenant": "{tenant}", "group_by": "model"}, None),
    "usage.key": ("GET", "/v1/usage", {"key": "{key}", "group_by": "day"}, None),
    "audit.tenant": ("GET", "/v1/audit", {"tenant": "{tenant}"}, None),
}
DEFAULTS = {"model": "pub", "tenant": "acme", "key": "acme_user", "name": "newco", "role": "user"}


@dataclass(frozen=True)
class Case:
    id: str
    op: str
    actor: str  # a key of the world, "root", or one of HEADERS
    status: int | tuple[int, ...]
    args: dict[str, str] = field(default_factory=dict)  # placeholder values (key names resolve to ids)
    like: dict[str, str] | None = None  # must answer exactly as this nonexistent resource does
    check: Callable[[World, httpx.Response], None] | None = None
    prepare: Callable[[World], contextlib.AbstractContextManager[None]] | None = None
    side_effect_free: bool = True


def _fill(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**subs)
    if isinstance(value, list):
        return [_fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, subs) for k, v in value.items()}
    return value


def resolve(world: World, args: dict[str, str]) -> dict[str, str]:
    subs = {**DEFAULTS, **args}
    key = subs["key"]
    if key in world.keys:
        subs["key"] = world.keys[key].id
    return subs


def send(world: World, op: str, headers: dict[str, str], subs: dict[str, str]) -> httpx.Response:
    method, path, query, body = OPS[op]
    url = path.format(**{k: quote(v, safe="") for k, v in subs.items()})
    kwargs: dict[str, Any] = {"headers": headers}
    if query is not None:
        kwargs["params"] = _fill(query, subs)
    if body is not None:
        kwargs["json"] = _fill(body, subs)
    return world.client.request(method, url, **kwargs)


HEADERS: dict[str, Callable[[World], dict[str, str]]] = {
    "nobody": lambda w: {},
    "token_scheme": lambda w: {"Authorization": "Token x"},
    "bearer_alone": lambda w: {"Authorization": "Bearer"},
    "bearer_blank": lambda w: {"Authorization": "Bearer    "},
    "unknown_key": lambda w: auth(f"aiaas-{NO_KEY_ID}-{'A' * 43}"),
    "forged_secret": lambda w: auth(f"aiaas-{w.keys['acme_user'].id}-{'B' * 43}"),  # a real id, wrong secret
    "garbage_key": lambda w: auth("not-a-key"),
    "sql_key_id": lambda w: auth(f"aiaas-';DROP TABLE-{'A' * 43}"),  # a 12-character "id" of SQL
    "revoked": lambda w: w.keys["revoked"].headers,
    "expired": lambda w: w.keys["expired"].headers,
}


def headers_for(world: World, actor: str) -> dict[str, str]:
    if actor == "root":
        return ROOT
    if actor in HEADERS:
        return HEADERS[actor](world)
    return world.keys[actor].headers


def normalized(r: httpx.Response, name: str) -> tuple[int, str, str]:
    return r.status_code, r.headers.get("content-type", ""), r.text.replace(name, "<NAME>")


# -- checks ---------------------------------------------------------------------------------------------------
def unauthenticated(fragment: str) -> Callable[[World, httpx.Response], None]:
    def check(world: World, r: httpx.Response) -> None:
        assert r.headers.get("www-authenticate") == "Bearer"
        assert fragment in error_message(r).lower(), r.text

    return check


def lists(present: set[str], absent: set[str], stats: bool = False) -> Callable[[World, httpx.Response], None]:
    def check(world: World, r: httpx.Response) -> None:
        doc = r.json()
        names = {row["name"] for row in (doc["model_stats"] if stats else doc)}
        assert present <= names and not (absent & names), names

    return check


def rate_limited(kind: str, scope: str) -> Callable[[World, httpx.Response], None]:
    """429 with Retry-After and the x-ratelimit-* pair of ``kind`` (requests | units), naming the scope."""

    def check(world: World, r: httpx.Response) -> None:
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers[f"x-ratelimit-limit-{kind}"] == "1"
        assert r.headers[f"x-ratelimit-remaining-{kind}"] == "0"
        message = error_message(r)
        assert f"{kind}-per-minute" in message and scope.format(**{k: v.id for k, v in world.keys.items()}) in message

    return check


def concurrency_limited(world: World, r: httpx.Response) -> None:
    assert int(r.headers["retry-after"]) >= 1
    assert "concurrency" in error_message(r) and world.keys["conc"].id in error_message(r)


def over_budget(world: World, r: httpx.Response) -> None:
    message = error_message(r)
    now = datetime.now(UTC)
    reset = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1).isoformat()
    key_id = world.keys["broke"].id
    for part in ("key budget", key_id, "limit 2.0000", "per month", f"resets at {reset}"):
        assert part in message, (part, message)


def openai_lists(present: set[str], absent: set[str]) -> Callable[[World, httpx.Response], None]:
    def check(world: World, r: httpx.Response) -> None:
        names = {row["id"] for row in r.json()["data"]}
        assert present <= names and not (absent & names), names

    return check


def only_own_tenant(world: World, r: httpx.Response) -> None:
    assert {t["id"] for t in r.json()["data"]} == {"acme"}


# -- preparations for the limit rows -----------------------------------------------------------------------------
def exhaust(key: str, model: str, refusal: int) -> Callable[[World], contextlib.AbstractContextManager[None]]:
    """Spend the key's allowance until the model answers ``refusal`` (at most 5 calls)."""

    @contextlib.contextmanager
    def prepare(world: World) -> Iterator[None]:
        headers = world.keys[key].headers
        statuses = [world.client.post(f"/v2/models/{model}/infer", json=X, headers=headers).status_code]
        while statuses[-1] != refusal and len(statuses) < 5:
            statuses.append(world.client.post(f"/v2/models/{model}/infer", json=X, headers=headers).status_code)
        assert statuses[-1] == refusal and set(statuses) <= {200, refusal}, statuses
        yield

    return prepare


@contextlib.contextmanager
def hold_slot(world: World) -> Iterator[None]:
    """One request of the ``conc`` key sits in the gate model until the case has run."""
    key = world.keys["conc"]
    world.gate.touch()
    result: dict[str, Any] = {}

    def slow() -> None:
        result["status"] = world.client.post("/v2/models/gate/infer", json=GATE_X, headers=key.headers).status_code

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    try:
        wait_for(lambda: world.governance.limiter.inflight(f"key:{key.id}") == 1, what="the slot to be taken")
        yield
    finally:
        world.gate.unlink(missing_ok=True)
        thread.join(30)
    assert result.get("status") == 200, result


# -- the table -------------------------------------------------------------------------------------------------
AUTH_OPS = [
    "v2.metadata",
    "v2.ready",
    "v2.infer",
    "v2.infer_version",
    "v2.stats",
    "v2.stats_all",
    "v2.index",
    "v2.load",
    "v2.unload",
    "openai.list",
    "openai.model",
    "openai.embeddings",
    "openai.chat",
    "tenants.list",
    "tenants.create",
    "tenants.delete",
    "keys.create",
    "keys.revoke",
    "keys.rotate",
    "limits.key.write",
    "limits.tenant.read",
    "budgets.key.write",
    "budgets.tenant.read",
    "grants.create",
    "owner.write",
    "usage.tenant",
    "audit.tenant",
]
AUTH_ACTORS = {
    "nobody": "missing authorization",
    "token_scheme": "malformed authorization",
    "bearer_alone": "malformed authorization",
    "bearer_blank": "malformed authorization",
    "unknown_key": "invalid api key",
    "forged_secret": "invalid api key",
    "garbage_key": "invalid api key",
    "sql_key_id": "invalid api key",
    "revoked": "revoked",
    "expired": "expired",
}

CASES: list[Case] = [
    Case(f"{actor}-{op}", op, actor, 401, check=unauthenticated(fragment))
    for actor, fragment in AUTH_ACTORS.items()
    for op in AUTH_OPS
]

# Wrong role: a user key manages nothing; a developer key manages only its tenant's keys and models.
CASES += [
    Case(f"user-{op}-{'-'.join(args.values()) or 'default'}", op, "acme_user", 403, args)
    for op, args in [
        ("v2.load", {"model": "pub"}),
        ("v2.unload", {"model": "pub"}),
        ("v2.load", {"model": "secret"}),  # even its own tenant's model
        ("v2.unload", {"model": "secret"}),
        ("tenants.create", {}),
        ("tenants.delete", {"tenant": "acme"}),
        ("keys.create", {"tenant": "acme"}),
        ("keys.revoke", {"key": "acme_user"}),  # its own key
        ("keys.rotate", {"key": "acme_user"}),
        ("limits.key.write", {"key": "acme_user"}),  # cannot lift its own limits
        ("limits.tenant.read", {"tenant": "acme"}),
        ("budgets.key.write", {"key": "acme_user"}),
        ("budgets.tenant.read", {"tenant": "acme"}),
        ("grants.create", {"model": "secret", "tenant": "globex"}),
        ("owner.write", {"model": "pub"}),
        ("audit.tenant", {"tenant": "acme"}),
    ]
]
CASES += [
    Case("user-reads-another-key", "keys.read", "acme_user", 404, {"key": "acme_dev"}, like={"key": NO_KEY_ID}),
    Case("user-usage-of-another-key", "usage.key", "acme_user", 404, {"key": "acme_dev"}, like={"key": NO_KEY_ID}),
]
CASES += [
    Case(f"developer-{name}", op, "acme_dev", 403, args)
    for name, op, args in [
        ("creates-admin-key", "keys.create", {"tenant": "acme", "role": "admin"}),
        ("creates-tenant", "tenants.create", {}),
        ("deletes-own-tenant", "tenants.delete", {"tenant": "acme"}),
        ("lifts-tenant-limits", "limits.tenant.write", {"tenant": "acme"}),
        ("lifts-tenant-budget", "budgets.tenant.write", {"tenant": "acme"}),
        ("sets-owner", "owner.write", {"model": "secret", "tenant": "acme"}),
        ("loads-public-model", "v2.load", {"model": "pub"}),
        ("unloads-public-model", "v2.unload", {"model": "pub"}),
        ("grants-public-model", "grants.create", {"model": "pub", "tenant": "globex"}),
    ]
]
CASES += [
    Case(
        "developer-revokes-bootstrap-admin", "keys.revoke", "acme_dev", 404, {"key": "admin"}, like={"key": NO_KEY_ID}
    ),
]

# Cross-tenant: globex on acme's private model, keys, limits, budgets, usage and audit -> the 404 of nothing.
MODEL_ABSENT = {"model": "nosuchmodel"}
TENANT_ABSENT = {"tenant": "nosuchtenant"}
KEY_ABSENT = {"key": NO_KEY_ID}
CASES += [
    Case(f"cross-{actor}-{op}", op, actor, 404, args, like=like)
    for actor, op, args, like in [
        ("globex_user", "v2.metadata", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "v2.ready", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "v2.infer", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "v2.infer_version", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "v2.stats", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "openai.model", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "openai.embeddings", {"model": "secret"}, MODEL_ABSENT),
        ("globex_user", "openai.chat", {"model": "secret"}, MODEL_ABSENT),
        ("globex_dev", "v2.metadata", {"model": "secret"}, MODEL_ABSENT),
        ("globex_dev", "v2.load", {"model": "secret"}, MODEL_ABSENT),
        ("globex_dev", "v2.unload", {"model": "secret"}, MODEL_ABSENT),
        ("globex_dev", "tenants.read", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "tenants.delete", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "keys.list", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "keys.create", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "keys.read", {"key": "acme_user"}, KEY_ABSENT),
        ("globex_dev", "keys.revoke", {"key": "acme_user"}, KEY_ABSENT),
        ("globex_dev", "keys.rotate", {"key": "acme_dev"}, KEY_ABSENT),
        ("globex_dev", "limits.key.read", {"key": "acme_user"}, KEY_ABSENT),
        ("globex_dev", "limits.key.write", {"key": "acme_user"}, KEY_ABSENT),
        ("globex_dev", "limits.tenant.read", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "limits.tenant.write", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "budgets.key.read", {"key": "broke"}, KEY_ABSENT),
        ("globex_dev", "budgets.key.write", {"key": "broke"}, KEY_ABSENT),
        ("globex_dev", "budgets.tenant.read", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "budgets.tenant.write", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "grants.create", {"model": "secret", "tenant": "globex"}, MODEL_ABSENT),
        ("globex_dev", "grants.delete", {"model": "secret", "tenant": "globex"}, MODEL_ABSENT),
        ("globex_dev", "usage.tenant", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_dev", "usage.key", {"key": "acme_user"}, KEY_ABSENT),
        ("globex_dev", "audit.tenant", {"tenant": "acme"}, TENANT_ABSENT),
        ("globex_user", "keys.read", {"key": "acme_user"}, KEY_ABSENT),
        ("globex_user", "usage.tenant", {"tenant": "acme"}, TENANT_ABSENT),
    ]
]
CASES += [
    Case("cross-index-hides-private-model", "v2.index", "globex_user", 200, check=lists({"pub"}, {"secret"})),
    Case(
        "cross-stats-hides-private-model",
        "v2.stats_all",
        "globex_user",
        200,
        check=lists({"pub"}, {"secret"}, stats=True),
    ),
    Case(
        "cross-openai-list-hides-private-model",
        "openai.list",
        "globex_user",
        200,
        check=openai_lists({"pub"}, {"secret"}),
    ),
    Case("cross-tenant-list-shows-own-tenant", "tenants.list", "acme_dev", 200, check=only_own_tenant),
]

# Read-only positive controls: the same routes answer the right key.
CASES += [
    Case("ok-owner-tenant-sees-private-model", "v2.metadata", "acme_user", 200, {"model": "secret"}),
    Case("ok-openai-model-for-its-owner", "openai.model", "acme_user", 200, {"model": "secret"}),
    Case("ok-index-shows-own-private-model", "v2.index", "acme_user", 200, check=lists({"pub", "secret"}, set())),
    Case("ok-developer-reads-own-tenant-key", "keys.read", "acme_dev", 200, {"key": "acme_user"}),
    Case("ok-developer-reads-own-usage", "usage.tenant", "acme_dev", 200),
    Case("ok-user-reads-own-limits", "limits.key.read", "acme_user", 200),
    Case("ok-developer-reads-audit", "audit.tenant", "acme_dev", 200),
    Case("ok-admin-reads-another-tenant", "tenants.read", "root", 200, {"tenant": "globex"}),
]

# Over the limits (only model calls are metered and limited).
CASES += [
    Case(
        "over-rate-infer",
        "v2.infer",
        "rate",
        429,
        check=rate_limited("requests", "key '{rate}'"),
        prepare=exhaust("rate", "pub", 429),
    ),
    Case(
        "over-rate-infer-version",
        "v2.infer_version",
        "rate",
        429,
        check=rate_limited("requests", "key '{rate}'"),
        prepare=exhaust("rate", "pub", 429),
    ),
    Case(
        "over-units-infer",
        "v2.infer",
        "units",
        429,
        check=rate_limited("units", "key '{units}'"),
        prepare=exhaust("units", "pub", 429),
    ),
    Case(
        "over-tenant-rate-infer",
        "v2.infer",
        "tenant_rate",
        429,
        check=rate_limited("requests", "tenant 'limited'"),
        prepare=exhaust("tenant_rate", "pub", 429),
    ),
    Case("over-concurrency-infer", "v2.infer", "conc", 429, check=concurrency_limited, prepare=hold_slot),
    Case(
        "over-budget-infer",
        "v2.infer",
        "broke",
        402,
        {"model": "priced"},
        check=over_budget,
        prepare=exhaust("broke", "priced", 402),
    ),
]

# A key that "expires in 0 days" is refused, not made into a key that never expires.
CASES += [Case("invalid-expiry-zero", "keys.create_expired", "root", 400)]

# Hostile names in every name slot: a clear 400 or 404, never a 500, and the database intact.
HOSTILE = {
    "traversal": "../../etc",  # sent as ..%2F..%2Fetc in paths
    "nul": "a\x00b",
    "sql": "a'; DROP TABLE api_keys;--",
    "long": "x" * 5000,
    "unicode": "mél☃-名前",
}
HOSTILE_SLOTS = [
    ("v2.metadata", "model"),
    ("v2.ready", "model"),
    ("v2.infer", "model"),
    ("v2.stats", "model"),
    ("v2.load", "model"),
    ("v2.unload", "model"),
    ("openai.model", "model"),
    ("openai.embeddings", "model"),
    ("tenants.read", "tenant"),
    ("tenants.create", "name"),
    ("tenants.delete", "tenant"),
    ("keys.list", "tenant"),
    ("keys.create", "tenant"),
    ("keys.create_for_models", "model"),
    ("keys.read", "key"),
    ("keys.revoke", "key"),
    ("keys.rotate", "key"),
    ("limits.key.write", "key"),
    ("limits.tenant.write", "tenant"),
    ("budgets.key.read", "key"),
    ("budgets.tenant.write", "tenant"),
    ("grants.create", "model"),
    ("grants.create", "tenant"),
    ("owner.write", "model"),
    ("owner.write", "tenant"),
    ("usage.tenant", "tenant"),
    ("usage.key", "key"),
    ("audit.tenant", "tenant"),
]


def hostile_statuses(label: str, op: str) -> tuple[int, ...]:
    # "/v1/models/../../etc/grants/x" decodes onto the OpenAI route GET /v1/models/{model:path}, so the router
    # refuses other methods there with 405 before any handler runs: a clean refusal too.
    if label == "traversal" and OPS[op][1].startswith("/v1/models/") and OPS[op][0] != "GET":
        return (400, 404, 405)
    return (400, 404)


CASES += [
    Case(f"hostile-{label}-{op}-{slot}", op, "root", hostile_statuses(label, op), {slot: value})
    for label, value in HOSTILE.items()
    for op, slot in HOSTILE_SLOTS
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_security_case(world: World, case: Case) -> None:
    subs = resolve(world, case.args)
    headers = headers_for(world, case.actor)
    with case.prepare(world) if case.prepare else contextlib.nullcontext():
        before = world.snapshot()
        r = send(world, case.op, headers, subs)
        after = world.snapshot()
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert r.status_code in expected, f"{case.id}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        assert error_message(r), r.text  # a clear message in the route's error shape
    if case.side_effect_free:
        assert after == before, f"{case.id} changed state"
    if case.check is not None:
        case.check(world, r)
    if case.like is not None:
        twin_subs = resolve(world, {**case.args, **case.like})
        twin = send(world, case.op, headers, twin_subs)
        slot = next(iter(case.like))
        assert normalized(r, subs[slot]) == normalized(twin, twin_subs[slot]), (r.text, twin.text)


def test_hostile_names_left_the_schema_intact(world: World) -> None:
    """After every hostile row, all tables still exist and hold what the fixtures made."""
    r = world.client.get("/v1/keys", headers=ROOT)
    assert r.status_code == 200 and len(r.json()["data"]) >= len(world.keys)
    tenants = {t["id"] for t in world.client.get("/v1/tenants", headers=ROOT).json()["data"]}
    assert {"system", "acme", "globex"} <= tenants
    assert all(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}", t) for t in tenants), tenants


# -- racing at the budget edge ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["priced", "metered"])
def test_racing_requests_cannot_overspend(world: World, model: str) -> None:
    """30 concurrent calls at 1.0 each (per request, or per unit) against a tenant budget of 10 (one key also
    has its own budget of 6): exactly 10 succeed, the rest are refused with 402, nothing is overspent."""
    tenant = f"racer-{model}"
    assert world.client.post("/v1/tenants", json={"name": tenant}, headers=ROOT).status_code == 201
    r = world.client.put(f"/v1/budgets/tenant/{tenant}", json={"limit": 10, "period": "day"}, headers=ROOT)
    assert r.status_code == 200, r.text
    capped = world.key(tenant, budget={"limit": 6, "period": "month"})
    free = world.key(tenant)
    barrier = threading.Barrier(30)

    def call(i: int) -> tuple[str, int, str]:
        key = capped if i % 2 else free
        barrier.wait(10)
        r = world.client.post(f"/v2/models/{model}/infer", json=X, headers=key.headers)
        return key.id, r.status_code, r.text

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(call, range(30)))
    statuses = [s for _, s, _ in results]
    assert set(statuses) <= {200, 402}, results
    assert statuses.count(200) == 10, statuses
    assert sum(1 for k, s, _ in results if k == capped.id and s == 200) <= 6
    refusals = [json.loads(t)["error"] for _, s, t in results if s == 402]
    assert all("budget" in m and ("resets at" in m) for m in refusals), refusals
    world.flush()
    spent_tenant = world.client.get(f"/v1/budgets/tenant/{tenant}", headers=ROOT).json()["spent"]
    spent_key = world.client.get(f"/v1/budgets/key/{capped.id}", headers=ROOT).json()["spent"]
    assert spent_tenant <= 10 + 1.0 and spent_key <= 6 + 1.0
    assert spent_tenant == pytest.approx(10.0)  # the units are known up front: the reservation is the exact cost
    usage = world.client.get("/v1/usage", params={"tenant": tenant, "group_by": "key"}, headers=ROOT).json()
    assert sum(row["requests"] for row in usage["data"]) == 10  # refused calls are not metered
    assert sum(row["cost"] for row in usage["data"]) == pytest.approx(spent_tenant)
