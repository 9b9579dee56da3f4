"""API keys: format, hashing, verification and their database operations.

A key reads ``aiaas-<id>-<secret>``: ``id`` (12 hex characters) is the public lookup prefix and the key's id
everywhere (usage, audit, URLs); ``secret`` is 32 random bytes (256 bits, urlsafe base64). The database keeps
only ``sha256(whole key)``. A fast hash is the right tool here: slow hashes (bcrypt, argon2) defend low-entropy
human passwords against offline guessing, while a 256-bit random secret cannot be guessed at any hash speed;
a slow hash would only add tens of milliseconds to every request. Comparison uses ``hmac.compare_digest``.

The operator's bootstrap admin key (AIAAS_ADMIN_KEY or $AIAAS_HOME/admin.key) has any format; it is stored
under the fixed id ``admin`` and matched by hash when a token does not resolve to another key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from aiaas.errors import NotFound
from aiaas.store.models import ApiKey, Budget, Limit, utcnow

KEY_PREFIX = "aiaas"
BOOTSTRAP_KEY_ID = "admin"
SYSTEM_TENANT = "system"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> tuple[str, str]:
    """A fresh (key_id, token); the token is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}-{key_id}-{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The lookup id inside a well-formed aiaas key, or None (e.g. for a free-form bootstrap key)."""
    parts = token.split("-", 2)
    if len(parts) == 3 and parts[0] == KEY_PREFIX and len(parts[1]) == 12 and parts[2]:
        return parts[1]
    return None


def verify(token: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_key(token).encode(), secret_hash.encode())


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authentication needs about a key, cached in memory for a few seconds."""

    id: str
    tenant_id: str
    role: str
    secret_hash: str
    allowed_models: frozenset[str] | None
    expires_at: datetime | None
    revoked: bool
    created_at: datetime = datetime.min

    @classmethod
    def of(cls, row: ApiKey) -> KeyRecord:
        models = frozenset(row.allowed_models) if row.allowed_models is not None else None
        return cls(
            row.id,
            row.tenant_id,
            row.role,
            row.secret_hash,
            models,
            row.expires_at,
            row.revoked_at is not None,
            row.created_at or datetime.min,
        )


def load_key(session: Session, key_id: str) -> KeyRecord | None:
    row = session.get(ApiKey, key_id)
    return KeyRecord.of(row) if row is not None else None


def insert_key(
    session: Session,
    tenant_id: str,
    role: str,
    *,
    name: str | None = None,
    allowed_models: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    key_id, token = generate_key()
    while session.get(ApiKey, key_id) is not None:  # 48-bit ids: a collision is rare but must not overwrite
        key_id, token = generate_key()
    row = ApiKey(
        id=key_id,
        tenant_id=tenant_id,
        role=role,
        name=name,
        secret_hash=hash_key(token),
        allowed_models=allowed_models,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, token


def expiry_in(days: float | None) -> datetime | None:
    return utcnow() + timedelta(days=days) if days is not None else None


def get_key_row(session: Session, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key '{key_id}' not found", param="key_id", code="key_not_found")
    return row


def revoke(row: ApiKey) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def rotate(session: Session, row: ApiKey) -> tuple[ApiKey, str]:
    """A new key with the same tenant, role, models, remaining lifetime, limits and budget; the old one is
    revoked. The budget moves with its spent amount, so rotating cannot reset what was spent."""
    new, token = insert_key(
        session, row.tenant_id, row.role, name=row.name, allowed_models=row.allowed_models, expires_at=row.expires_at
    )
    session.execute(update(Limit).where(Limit.scope == "key", Limit.subject_id == row.id).values(subject_id=new.id))
    session.execute(update(Budget).where(Budget.scope == "key", Budget.subject_id == row.id).values(subject_id=new.id))
    revoke(row)
    row.rotated_to = new.id
    session.flush()
    return new, token


def key_info(row: ApiKey) -> dict[str, object]:
    """The public view of a key: never the secret or its hash."""
    now = utcnow()
    status = "active"
    if row.revoked_at is not None:
        status = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    return {
        "id": row.id,
        "tenant": row.tenant_id,
        "role": row.role,
        "name": row.name,
        "models": row.allowed_models,
        "status": status,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
        "rotated_to": row.rotated_to,
    }


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") + "Z" if dt is not None else None
