"""The bootstrap admin key: from AIAAS_ADMIN_KEY, else $AIAAS_HOME/admin.key, else generated once."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: the CLI reads keys without importing pydantic-settings (start-up time)
    from aiaas.settings import Settings


@dataclass(frozen=True)
class AdminKey:
    key: str
    generated: bool  # True only the first time: the CLI prints it once
    path: str | None


def read_admin_key(settings: Settings) -> AdminKey | None:
    """The configured key, without creating one (for clients such as the CLI)."""
    return admin_key_of(settings.home, settings.admin_key)


def admin_key_of(home: Path, configured: str | None) -> AdminKey | None:
    """``configured`` (AIAAS_ADMIN_KEY) when set, else the key in ``home/admin.key``, else None."""
    if configured:
        return AdminKey(configured, False, None)
    path = home / "admin.key"
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return AdminKey(key, False, str(path))
    return None


def ensure_admin_key(settings: Settings) -> AdminKey:
    existing = read_admin_key(settings)
    if existing is not None:
        return existing
    path = settings.home / "admin.key"
    settings.home.mkdir(parents=True, exist_ok=True)
    key = "aiaas-admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)
    return AdminKey(key, True, str(path))
