from __future__ import annotations

import pytest
from sqlalchemy import func, select

from aiaas.errors import AiaasError, Conflict, InvalidInput, NotFound, PermissionDenied
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import ModelRef, Principal
from aiaas.service.governance.service import DbGovernance, model_not_found
from aiaas.store.db import Store
from aiaas.store.models import AuditEntry, Tenant

from .helpers import make_key

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(gov: DbGovernance, admin: GovernanceAdmin, root: Principal) -> dict[str, Principal]:
    """Two tenants, each with a developer and a user key."""
    out: dict[str, Principal] = {"root": root}
    for tenant in ("acme", "globex"):
        admin.create_tenant(root, tenant)
        out[f"{tenant}_dev"], _ = await make_key(gov, admin, root, tenant, "developer")
        out[f"{tenant}_user"], _ = await make_key(gov, admin, root, tenant, "user")
    return out


async def test_model_visibility(gov: DbGovernance, admin: GovernanceAdmin, world: dict[str, Principal]) -> None:
    root, dev, other = world["root"], world["acme_dev"], world["globex_user"]
    public, private = ModelRef("pub"), ModelRef("secret", owner="acme")
    assert gov.can_see(dev, public) and gov.can_see(other, public)
    assert gov.can_see(dev, private) and gov.can_see(root, private) and not gov.can_see(other, private)
    with pytest.raises(NotFound) as invisible:
        await gov.admit(other, private, "infer")
    expected = model_not_found("secret")
    assert (invisible.value.message, invisible.value.code) == (expected.message, expected.code)
    admin.grant_model(root, "secret", "globex")
    assert gov.can_see(other, private)
    await gov.admit(other, private, "infer")
    admin.revoke_model_grant(root, "secret", "globex")
    assert not gov.can_see(other, private)
    # The database ACL overrides the model's own owner: make it public, then owned by globex only.
    admin.set_model_owner(root, "secret", None, True)
    assert gov.can_see(other, private)
    admin.set_model_owner(root, "secret", "globex", False)
    assert gov.can_see(other, private) and not gov.can_see(dev, private)


async def test_key_allow_list(gov: DbGovernance, admin: GovernanceAdmin, world: dict[str, Principal]) -> None:
    limited, _ = await make_key(gov, admin, world["root"], "acme", "user", models=["a"])
    assert gov.can_see(limited, ModelRef("a")) and not gov.can_see(limited, ModelRef("b"))
    with pytest.raises(NotFound):
        await gov.admit(limited, ModelRef("b"), "infer")


async def test_developer_manages_only_its_own_tenant(admin: GovernanceAdmin, world: dict[str, Principal]) -> None:
    dev = world["acme_dev"]
    created = admin.create_key(dev, "acme", "user")
    assert created["tenant"] == "acme"
    with pytest.raises(PermissionDenied):
        admin.create_key(dev, "acme", "admin")
    with pytest.raises(PermissionDenied):
        admin.create_tenant(dev, "newco")
    with pytest.raises(PermissionDenied):
        admin.set_limits(dev, "tenant", "acme", rpm=1000)  # cannot lift its own tenant's quota
    admin.set_limits(dev, "key", created["id"], rpm=10)
    assert admin.get_limits(dev, "tenant", "acme")["requests_per_minute"] is None
    # Everything in globex answers 404, exactly like something that does not exist.
    globex_key = world["globex_user"].key_id
    calls = [
        lambda: admin.get_tenant(dev, "globex"),
        lambda: admin.create_key(dev, "globex", "user"),
        lambda: admin.list_keys(dev, "globex"),
        lambda: admin.get_key(dev, globex_key),
        lambda: admin.revoke_key(dev, globex_key),
        lambda: admin.rotate_key(dev, globex_key),
        lambda: admin.set_limits(dev, "key", globex_key, rpm=1),
        lambda: admin.get_budget(dev, "tenant", "globex"),
        lambda: admin.usage(dev, tenant="globex"),
        lambda: admin.audit(dev, tenant="globex"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    missing = [lambda: admin.get_tenant(dev, "nope"), lambda: admin.get_key(dev, "0123456789ab")]
    for call in missing:
        with pytest.raises(NotFound):
            call()
    assert {t["id"] for t in admin.list_tenants(dev)} == {"acme"}
    assert {k["tenant"] for k in admin.list_keys(dev)} == {"acme"}


async def test_developer_grants_only_models_its_tenant_owns(
    admin: GovernanceAdmin, world: dict[str, Principal]
) -> None:
    root, dev = world["root"], world["acme_dev"]
    admin.set_model_owner(root, "acme-model", "acme", False)
    admin.set_model_owner(root, "globex-model", "globex", False)
    admin.set_model_owner(root, "shared", None, True)
    assert admin.grant_model(dev, "acme-model", "globex")["grants"] == ["globex"]
    with pytest.raises(NotFound):
        admin.grant_model(dev, "globex-model", "acme")
    with pytest.raises(PermissionDenied):
        admin.grant_model(dev, "shared", "acme")
    with pytest.raises(PermissionDenied):
        admin.set_model_owner(dev, "acme-model", "acme", True)
    with pytest.raises(PermissionDenied):
        admin.grant_model(world["acme_user"], "acme-model", "globex")


async def test_user_reads_only_its_own_key(admin: GovernanceAdmin, world: dict[str, Principal]) -> None:
    user = world["acme_user"]
    assert [k["id"] for k in admin.list_keys(user)] == [user.key_id]
    assert admin.get_key(user, user.key_id)["id"] == user.key_id
    with pytest.raises(NotFound):
        admin.get_key(user, world["acme_dev"].key_id)
    with pytest.raises(PermissionDenied):
        admin.revoke_key(user, user.key_id)
    with pytest.raises(PermissionDenied):
        admin.create_key(user, "acme", "user")
    with pytest.raises(PermissionDenied):
        admin.audit(user)
    with pytest.raises(PermissionDenied):
        admin.get_limits(user, "tenant", "acme")
    assert admin.get_limits(user, "key", user.key_id)["id"] == user.key_id
    assert admin.usage(user)["key"] == user.key_id


async def test_every_administrative_action_is_audited(
    store: Store, admin: GovernanceAdmin, world: dict[str, Principal]
) -> None:
    root, dev = world["root"], world["acme_dev"]
    key = admin.create_key(dev, "acme", "user")
    admin.set_limits(dev, "key", key["id"], rpm=5)
    admin.set_budget(dev, "key", key["id"], amount=2, period="day")
    admin.rotate_key(dev, key["id"])
    admin.delete_tenant(root, "globex")
    actions = [r["action"] for r in admin.audit(root, limit=1000)]
    for action in ("tenant.create", "key.create", "limits.set", "budget.set", "key.rotate", "tenant.delete"):
        assert action in actions, action
    dev_rows = admin.audit(dev, limit=1000)
    assert dev_rows and all("acme" in (r["tenant"], r["actor_tenant"]) for r in dev_rows)
    assert dev_rows[0]["action"] == "key.rotate" and dev_rows[0]["actor_key"] == dev.key_id
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(AuditEntry))
    assert total == len(actions)


HOSTILE = [
    "../../etc/passwd",
    "acme'; DROP TABLE tenants; --",
    "a" * 10_000,
    "ténant-ü",
    "名前",
    "",
    ".",
    "..",
    "with space",
    "nul\x00byte",
    "-leading-dash",
    "a/b",
    "acme\n",
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_names_are_refused_cleanly(
    store: Store, admin: GovernanceAdmin, root: Principal, name: str
) -> None:
    calls = [
        lambda: admin.create_tenant(root, name),
        lambda: admin.get_tenant(root, name),
        lambda: admin.delete_tenant(root, name),
        lambda: admin.create_key(root, name),
        lambda: admin.get_key(root, name),
        lambda: admin.set_limits(root, "key", name, rpm=1),
        lambda: admin.set_budget(root, "tenant", name, amount=1),
        lambda: admin.grant_model(root, name, "system"),
        lambda: admin.set_model_owner(root, name, None, True),
        lambda: admin.usage(root, tenant=name),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.status_code == 400 and "invalid" in err.value.message
        assert len(err.value.message) < 300
    with store.session() as session:
        assert session.scalars(select(Tenant.id)).all() == ["system"]


async def test_other_hostile_values(admin: GovernanceAdmin, root: Principal) -> None:
    admin.create_tenant(root, "acme")
    bad: list = [  # type: ignore[type-arg]
        lambda: admin.create_key(root, "acme", "superuser"),
        lambda: admin.create_key(root, "acme", name="x" * 10_000),
        lambda: admin.create_key(root, "acme", models=["../x"]),
        lambda: admin.create_key(root, "acme", expires_days=-1),
        lambda: admin.set_limits(root, "tenant", "acme", rpm=-5),
        lambda: admin.set_limits(root, "tenant", "acme", upm=float("nan")),
        lambda: admin.set_limits(root, "tenant", "acme", rpm=1.5),  # type: ignore[arg-type]
        lambda: admin.set_limits(root, "galaxy", "acme", rpm=5),
        lambda: admin.set_budget(root, "tenant", "acme", amount=float("inf")),
        lambda: admin.set_budget(root, "tenant", "acme", amount=5, period="fortnight"),
        lambda: admin.usage(root, group_by="tenant; DROP TABLE x"),
        lambda: admin.usage(root, start="yesterday"),
        lambda: admin.usage(root, start="2025-02-01", end="2025-01-01"),
        lambda: admin.audit(root, action="x' OR 1=1 --"),
    ]
    for call in bad:
        with pytest.raises(InvalidInput):
            call()
    # Unicode in a free-text label is stored and read back intact.
    label = "CI ключ 🔑 'quoted'; --"
    created = admin.create_key(root, "acme", name=label)
    assert admin.get_key(root, created["id"])["name"] == label
    with pytest.raises(Conflict):
        admin.create_tenant(root, "acme")


async def test_errors_never_leak_as_500(admin: GovernanceAdmin, root: Principal) -> None:
    """Every failure above is an AiaasError with a 4xx status; spot-check a cross-section."""
    for call in (lambda: admin.delete_tenant(root, "system"), lambda: admin.get_tenant(root, "ghost")):
        with pytest.raises(AiaasError) as err:
            call()
        assert 400 <= err.value.status_code < 500
