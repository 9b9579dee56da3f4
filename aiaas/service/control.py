"""Model control for callers: the repository index, load and unload, with role and tenant checks."""

from __future__ import annotations

from typing import Any

from aiaas.errors import InvalidInput, NotFound, PermissionDenied, clip
from aiaas.service.governance import Governance, ModelRef, Principal
from aiaas.service.models import ModelManager


class ModelControl:
    def __init__(self, models: ModelManager, governance: Governance) -> None:
        self.models = models
        self.governance = governance

    def _owner(self, name: str) -> str | None:
        rec = self.models.models.get(name)
        if rec is not None and rec.config is not None:
            return rec.config.owner
        try:
            entry = self.models.repository.read(name)
        except NotFound:
            return None
        return entry.config.owner if entry.config else None

    def declared_owner(self, name: str) -> tuple[bool, str | None]:
        """Whether ``name`` is a model on this server (loaded or in the repository) and the owner its config
        declares; the governance admin falls back on it for models without an ownership record."""
        try:
            exists = name in self.models.models or self.models.repository.exists(name)
        except InvalidInput:
            return False, None
        return exists, self._owner(name) if exists else None

    def visible(self, p: Principal, name: str) -> bool:
        return self.governance.can_see(p, ModelRef(name=name, owner=self._owner(name)))

    def owner(self, name: str) -> str | None:
        return self.governance.owner_of(ModelRef(name, owner=self._owner(name)))

    def check_manage(self, p: Principal, name: str, what: str = "loading and unloading") -> None:
        """Admins manage every model; a developer only the models of their tenant (404 for what they cannot see)."""
        self._check_manage(p, name, what)

    def _check_manage(self, p: Principal, name: str, what: str = "loading and unloading") -> None:
        if p.role not in ("admin", "developer"):
            raise PermissionDenied(f"{what} models needs role admin or developer; your key has role {p.role}")
        exists = name in self.models.models or self.models.repository.exists(name)
        if not exists or not self.visible(p, name):
            raise NotFound(f"unknown model {clip(name)!r}")
        if p.role == "developer" and self.governance.owner_of(ModelRef(name, owner=self._owner(name))) != p.tenant_id:
            raise PermissionDenied(f"model {name!r} is not owned by your tenant; only its owner or an admin manages it")

    def can_manage(self, p: Principal, name: str) -> bool:
        """Whether ``load``/``unload`` of ``name`` would be allowed to this caller (the console's buttons)."""
        try:
            self._check_manage(p, name)
        except (NotFound, PermissionDenied):
            return False
        return True

    def index(self, p: Principal, ready_only: bool) -> list[dict[str, Any]]:
        return [r for r in self.models.index(ready_only) if self.visible(p, r["name"])]

    async def load(self, p: Principal, name: str) -> None:
        self._check_manage(p, name)
        rec = await self.models.load(name)
        if rec.state != "READY":
            raise InvalidInput(f"model {name!r} failed to load: {rec.reason}")
        if rec.last_error:
            raise InvalidInput(
                f"model {name!r} reload failed ({rec.last_error}); it keeps serving the previous versions"
            )

    async def unload(self, p: Principal, name: str) -> None:
        self._check_manage(p, name)
        if name in self.models.models:
            await self.models.unload(name)
