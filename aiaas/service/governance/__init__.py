from typing import TYPE_CHECKING, Any

from aiaas.service.governance.base import (
    AdminKeyGovernance,
    Admission,
    Governance,
    ModelRef,
    Outcome,
    Principal,
    parse_bearer,
)

if TYPE_CHECKING:  # loaded lazily below; these imports only tell the type checker what they are
    from aiaas.service.governance.admin import GovernanceAdmin
    from aiaas.service.governance.service import DbGovernance, model_not_found
    from aiaas.service.governance.setup import open_governance

__all__ = [
    "AdminKeyGovernance",
    "Admission",
    "DbGovernance",
    "Governance",
    "GovernanceAdmin",
    "ModelRef",
    "Outcome",
    "Principal",
    "model_not_found",
    "open_governance",
    "parse_bearer",
]


def __getattr__(name: str) -> Any:
    """The database-backed pieces import SQLAlchemy; load them only when asked for."""
    if name in ("DbGovernance", "model_not_found"):
        from aiaas.service.governance import service

        return getattr(service, name)
    if name == "GovernanceAdmin":
        from aiaas.service.governance.admin import GovernanceAdmin

        return GovernanceAdmin
    if name == "open_governance":
        from aiaas.service.governance.setup import open_governance

        return open_governance
    raise AttributeError(name)
