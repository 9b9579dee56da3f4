"""Shared test helpers (imported relatively by the test modules)."""

from __future__ import annotations

from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import Principal
from aiaas.service.governance.service import DbGovernance


async def make_key(
    gov: DbGovernance, admin: GovernanceAdmin, actor: Principal, tenant: str, role: str = "user", **kw: object
) -> tuple[Principal, str]:
    """Create a key and authenticate with it; returns (principal, secret)."""
    info = admin.create_key(actor, tenant, role, **kw)  # type: ignore[arg-type]
    return await gov.authenticate(f"Bearer {info['key']}"), info["key"]
