"""Console sessions over the database: open (after the API key authenticated), resolve (every request), close.

The cookie carries 32 random bytes; the row is keyed by their sha256, so a copy of the database opens no
session. Each resolve re-reads the key: a revoked, expired or deleted key ends its sessions at once, and the
principal is the key's current role and tenant -- exactly what the API would see for that key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from aiaas.service.governance import Principal
from aiaas.store.db import Store
from aiaas.store.models import ApiKey, utcnow
from aiaas.store.ui_sessions import UiSession


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    key_name: str | None

    def csrf_ok(self, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(self.csrf.encode(), (supplied or "").encode())


class SessionStore:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl_s)

    def open(self, principal: Principal) -> str:
        """A new session for an authenticated key; returns the cookie token (shown to nobody else)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.store.session() as s:
            s.execute(delete(UiSession).where(UiSession.expires_at <= now))  # sweep expired sessions
            s.add(
                UiSession(
                    id=_digest(token),
                    key_id=principal.key_id,
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
        return token

    def resolve(self, token: str | None) -> Session | None:
        """The live session behind a cookie token, or None (unknown, expired, or its key no longer valid)."""
        if not token or len(token) > 128:
            return None
        now = utcnow()
        with self.store.session() as s:
            row = s.get(UiSession, _digest(token))
            if row is None:
                return None
            key = s.get(ApiKey, row.key_id)
            if (
                row.expires_at <= now
                or key is None
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            ):
                s.delete(row)
                return None
            models = frozenset(key.allowed_models) if key.allowed_models is not None else None
            principal = Principal(key.id, key.tenant_id, key.role, models)  # type: ignore[arg-type]
            return Session(principal, row.csrf, key.name)

    def close(self, token: str | None) -> None:
        if token:
            with self.store.session() as s:
                s.execute(delete(UiSession).where(UiSession.id == _digest(token)))
