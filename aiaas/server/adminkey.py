"""The bootstrap admin key: from AIAAS_ADMIN_KEY, else $AIAAS_HOME/admin.key, else generated once."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from aiaas.settings import Settings


@dataclass(frozen=True)
class AdminKey:
    key: str
    generated: bool  # True only the first time: the CLI prints it once
    path: str | None


def read_admin_key(settings: Settings) -> AdminKey | None:
    """The configured key, without creating one (for clients such as the CLI)."""
    if settings.admin_key:
        return AdminKey(settings.admin_key, False, None)
    path = settings.home / "admin.key"
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
