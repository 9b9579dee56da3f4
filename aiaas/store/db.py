"""Engine and session factory for the aiaas store, plus programmatic Alembic upgrades.

SQLite (the zero-config default) runs in WAL mode so readers never block the single writer, with foreign
keys enforced and a busy timeout so concurrent writers wait instead of failing with "database is locked".
PostgreSQL goes through psycopg 3; a ``schema`` confines every table (and ``alembic_version``) to one
PostgreSQL schema through ``search_path``, which is how tests isolate themselves on a shared database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from aiaas.errors import ServiceUnavailable

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT_S = 5  # PostgreSQL: a server that does not answer a connection attempt counts as down after this


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (restarting, down, out of connections): 503, retry shortly."""

    def __init__(self, message: str = "the database is unavailable; retry shortly", **kw: Any) -> None:
        kw.setdefault("code", "database_unavailable")
        kw.setdefault("retry_after", 2)
        super().__init__(message, **kw)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (as opposed to a bad statement or a bug).

    The pool (``pool_pre_ping``) drops dead connections and the next checkout reconnects, so these errors
    last only while the server is really down."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def normalize_url(url: str) -> str:
    """Map plain ``postgresql://`` / ``postgres://`` URLs onto the psycopg 3 driver we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, *, schema: str | None = None, echo: bool = False) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if schema is not None:
            if not _SCHEMA_RE.fullmatch(schema):
                raise ValueError(f"invalid PostgreSQL schema name {schema!r}")
            connect_args["options"] = f"-csearch_path={schema}"
        kwargs["connect_args"] = connect_args
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        engine = create_engine(url, **kwargs)
        if schema is not None:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        return engine
    return create_engine(url, **kwargs)


def upgrade(url_or_engine: str | Engine, revision: str = "head", *, schema: str | None = None) -> None:
    """Bring the database to ``revision`` (default: the newest), in place; called at every startup."""
    from alembic import command
    from alembic.config import Config

    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine, schema=schema)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        if not isinstance(url_or_engine, Engine):
            engine.dispose()


def head_revision() -> str:
    """The newest migration's revision id (what ``upgrade()`` brings a database to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class Store:
    """One database: an engine, a session factory and the migration entry point."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.schema = schema
        self.engine = make_engine(self.url, schema=schema, echo=echo)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self, revision: str = "head") -> None:
        upgrade(self.engine, revision)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
