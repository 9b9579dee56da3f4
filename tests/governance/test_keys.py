from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from aiaas.errors import AuthenticationError, Conflict
from aiaas.service.governance import keys as keys_module
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import Principal
from aiaas.service.governance.service import DbGovernance
from aiaas.store.db import Store
from aiaas.store.models import ApiKey, utcnow

from .conftest import ADMIN_SECRET

pytestmark = pytest.mark.anyio


async def test_key_is_stored_only_as_a_hash(store: Store, admin: GovernanceAdmin, root: Principal) -> None:
    admin.create_tenant(root, "acme")
    info = admin.create_key(root, "acme", "user", name="ci")
    secret = info["key"]
    prefix, key_id, rest = secret.split("-", 2)
    assert prefix == "aiaas" and key_id == info["id"] and len(rest) >= 40
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM api_keys WHERE id = :i"), {"i": key_id}).mappings().one()
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(isinstance(v, str) and rest in v for v in row.values())
    listed = admin.list_keys(root, "acme")
    assert [k["id"] for k in listed] == [key_id]
    assert "key" not in listed[0] and "secret_hash" not in listed[0]
    assert "key" not in admin.get_key(root, key_id)


async def test_lookup_by_prefix_is_cached_and_compared_in_constant_time(
    gov: DbGovernance, admin: GovernanceAdmin, root: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin.create_tenant(root, "acme")
    secret = admin.create_key(root, "acme")["key"]
    loads: list[str] = []
    original = gov._load_key
    monkeypatch.setattr(gov, "_load_key", lambda key_id: loads.append(key_id) or original(key_id))
    compares: list[tuple[bytes, bytes]] = []
    real_compare = keys_module.hmac.compare_digest
    monkeypatch.setattr(keys_module.hmac, "compare_digest", lambda a, b: compares.append((a, b)) or real_compare(a, b))
    for _ in range(5):
        principal = await gov.authenticate(f"Bearer {secret}")
    assert principal.tenant_id == "acme" and principal.role == "user"
    assert loads == [secret.split("-")[1]]  # one database lookup by prefix, then the cache
    assert len(compares) == 5
    # A wrong secret with a valid prefix is refused (and falls back to the bootstrap key check).
    with pytest.raises(AuthenticationError, match="invalid API key"):
        await gov.authenticate(f"Bearer {secret[:-3]}xyz")
    with pytest.raises(AuthenticationError):
        await gov.authenticate("Basic abc")
    with pytest.raises(AuthenticationError):
        await gov.authenticate(None)


async def test_expired_key_is_refused(store: Store, gov: DbGovernance, admin: GovernanceAdmin, root: Principal) -> None:
    admin.create_tenant(root, "acme")
    info = admin.create_key(root, "acme", expires_days=1)
    assert (await gov.authenticate(f"Bearer {info['key']}")).key_id == info["id"]
    with store.session() as session:
        session.execute(
            update(ApiKey).where(ApiKey.id == info["id"]).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    gov.invalidate_key(info["id"])
    with pytest.raises(AuthenticationError, match="expired"):
        await gov.authenticate(f"Bearer {info['key']}")
    assert admin.get_key(root, info["id"])["status"] == "expired"


async def test_revocation_is_immediate_in_process_and_within_the_ttl_elsewhere(store: Store) -> None:
    now = [1000.0]  # the key cache's clock: the TTL window is exact however slow the machine is
    gov = DbGovernance(store, key_cache_ttl_s=5.0, clock=lambda: now[0])
    gov.bootstrap_admin(ADMIN_SECRET)
    local, remote = GovernanceAdmin(store, gov), GovernanceAdmin(store)  # remote: e.g. the CLI process
    root = await gov.authenticate(f"Bearer {ADMIN_SECRET}")
    local.create_tenant(root, "acme")
    a, b = local.create_key(root, "acme"), local.create_key(root, "acme")
    await gov.authenticate(f"Bearer {a['key']}")
    await gov.authenticate(f"Bearer {b['key']}")
    local.revoke_key(root, a["id"])
    with pytest.raises(AuthenticationError, match="revoked"):
        await gov.authenticate(f"Bearer {a['key']}")
    remote.revoke_key(root, b["id"])
    now[0] += 4.9
    await gov.authenticate(f"Bearer {b['key']}")  # still cached: the documented TTL window
    now[0] += 0.2
    with pytest.raises(AuthenticationError, match="revoked"):
        await gov.authenticate(f"Bearer {b['key']}")
    await gov.close()


async def test_rotation_returns_a_new_secret_and_revokes_the_old(
    store: Store, gov: DbGovernance, admin: GovernanceAdmin, root: Principal
) -> None:
    admin.create_tenant(root, "acme")
    old = admin.create_key(root, "acme", "developer", models=["m1"])
    admin.set_limits(root, "key", old["id"], rpm=7)
    admin.set_budget(root, "key", old["id"], amount=5.0, period="day")
    await gov.authenticate(f"Bearer {old['key']}")
    new = admin.rotate_key(root, old["id"])
    assert new["id"] != old["id"] and new["key"] != old["key"]
    principal = await gov.authenticate(f"Bearer {new['key']}")
    assert (principal.role, principal.tenant_id, principal.allowed_models) == ("developer", "acme", frozenset({"m1"}))
    with pytest.raises(AuthenticationError):
        await gov.authenticate(f"Bearer {old['key']}")
    assert admin.get_key(root, old["id"])["rotated_to"] == new["id"]
    assert admin.get_limits(root, "key", new["id"])["requests_per_minute"] == 7
    assert admin.get_budget(root, "key", new["id"])["limit"] == 5.0
    assert admin.get_limits(root, "key", old["id"])["requests_per_minute"] is None
    with pytest.raises(Conflict):
        admin.rotate_key(root, old["id"])


async def test_bootstrap_admin_key_follows_the_operator(
    store: Store, gov: DbGovernance, admin: GovernanceAdmin
) -> None:
    root = await gov.authenticate(f"Bearer {ADMIN_SECRET}")
    assert (root.key_id, root.tenant_id, root.role) == ("admin", "system", "admin")
    with pytest.raises(Conflict):
        admin.revoke_key(root, "admin")
    gov.bootstrap_admin("a-new-operator-secret")
    with pytest.raises(AuthenticationError):
        await gov.authenticate(f"Bearer {ADMIN_SECRET}")
    assert (await gov.authenticate("Bearer a-new-operator-secret")).role == "admin"
    with store.session() as session:
        assert session.scalars(select(ApiKey.id)).all() == ["admin"]
