"""One call to build the database-backed governance from ``Settings`` (used by the app factory and tests)."""

from __future__ import annotations

from typing import Any

from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.service import DbGovernance
from aiaas.settings import Settings
from aiaas.store.db import Store


def open_governance(
    settings: Settings, admin_key: str | None = None, **options: Any
) -> tuple[Store, DbGovernance, GovernanceAdmin]:
    """Migrate the database to head, build ``DbGovernance`` + ``GovernanceAdmin`` and install the bootstrap
    admin key. The caller still awaits ``governance.start()`` at startup and ``governance.close()`` then
    ``store.dispose()`` at shutdown. ``options`` go to ``DbGovernance`` (key_cache_ttl_s, refresh_s, ...)."""
    store = Store(settings.effective_database_url)
    store.upgrade()
    options.setdefault("redis_url", settings.redis_url)
    governance = DbGovernance(store, **options)
    if admin_key:
        governance.bootstrap_admin(admin_key)
    admin = GovernanceAdmin(store, governance)
    admin.ensure_system_tenant()
    return store, governance, admin


def resilience_options(settings: Settings) -> dict[str, Any]:
    """The ``DbGovernance`` options of the resilience settings (Redis down, key sprays, usage retention)."""
    return {
        "redis_timeout_s": settings.redis_timeout_s,
        "redis_failure_mode": settings.redis_failure_mode,  # closed | open: a Literal, checked by Settings
        "redis_retry_s": settings.redis_retry_s,
        "auth_failures_per_minute": settings.auth_failures_per_minute,
        "negative_key_cache_size": settings.negative_key_cache_size,
        "negative_key_cache_ttl_s": settings.negative_key_cache_ttl_s,
        "usage_retention_days": settings.usage_retention_days,
        "usage_rollup_interval_s": settings.usage_rollup_interval_s,
    }
