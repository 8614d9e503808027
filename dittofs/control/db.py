"""The control-plane database: engine from a URL (SQLite under the data dir by default,
PostgreSQL for HA), Alembic migrations at start-up, and blocking work run in its own
bounded thread pool so that SQL never runs on the reactor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from dittofs.threads import LazyPool

MIGRATIONS = str(Path(__file__).with_name("migrations"))
T = TypeVar("T")


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'control.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
        return engine
    return create_engine(url, pool_size=4, pool_pre_ping=True)


def alembic_config(connection: Any) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (blocking: call from a thread)."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class Database:
    """An engine, a session factory and the pool its blocking calls run in."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.pool = LazyPool("control-db", 4)

    def run(self, fn: Callable[[Session], T]) -> Any:
        """A Deferred firing with ``fn(session)``, run in a transaction in the pool."""
        def work() -> T:
            with self.sessions.begin() as session:
                return fn(session)
        return self.pool.run(work)

    def migrate(self) -> Any:
        return self.pool.run(migrate, self.engine)

    def close(self) -> None:
        self.pool.stop()
        self.engine.dispose()
