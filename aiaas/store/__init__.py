"""Persistence for aiaas: engine/session factory, ORM models and Alembic migrations."""

from aiaas.store import jobs as _jobs  # noqa: F401  -- registers the files/training tables on Base.metadata
from aiaas.store import ui_sessions as _ui_sessions  # noqa: F401  -- registers the console's sessions table
from aiaas.store.db import Store, make_engine, upgrade

__all__ = ["Store", "make_engine", "upgrade"]
