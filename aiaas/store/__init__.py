"""Persistence for aiaas: engine/session factory, ORM models and Alembic migrations."""

from aiaas.store.db import Store, make_engine, upgrade

__all__ = ["Store", "make_engine", "upgrade"]
