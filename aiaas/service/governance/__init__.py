from aiaas.service.governance.base import (
    AdminKeyGovernance,
    Admission,
    Governance,
    ModelRef,
    Outcome,
    Principal,
    parse_bearer,
)

__all__ = ["AdminKeyGovernance", "Admission", "Governance", "ModelRef", "Outcome", "Principal", "parse_bearer"]
