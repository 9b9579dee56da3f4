"""Signed-in web console sessions (``/ui``): the cookie holds a random token; the database keeps only its hash,
the API key it was opened with (never the key's secret), its CSRF token and its expiry. A session dies with its
key: revoking, rotating or deleting the key ends it (checked on every request; rows cascade on delete)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from aiaas.store.models import Base, utcnow


class UiSession(Base):
    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie token
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # the token every state-changing form must carry
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
