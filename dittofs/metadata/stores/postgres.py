"""PostgresMetadataStore: metadata in PostgreSQL (psycopg 3 via SQLAlchemy Core).

Each store lives in its own schema (``dittofs_<name>`` unless configured), migrated at
start-up by the numbered steps in ``MIGRATIONS``.  Transactions run in a bounded thread
pool of the store's own; write transactions lock the rows they read (``FOR UPDATE``) and
are retried on deadlock or serialization failure.  Directory listings and lookups use
the (dir_id, name) primary key and the (dir_id, cookie) index; READDIRPLUS joins the
file rows in the same query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event, exc
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from dittofs.metadata import errors as E
from dittofs.metadata.interfaces import IMetadataStore, ITransaction
from dittofs.metadata.types import DirEntry, FileRecord
from dittofs.threads import LazyPool

log = Logger(namespace="dittofs.metadata.postgres")

MIGRATIONS = [
    # 1: the initial schema
    """
    CREATE TABLE files (
        fileid bigint PRIMARY KEY, ftype smallint NOT NULL, mode integer NOT NULL,
        nlink integer NOT NULL, uid bigint NOT NULL, gid bigint NOT NULL, size bigint NOT NULL,
        rdev_major bigint NOT NULL, rdev_minor bigint NOT NULL, atime bigint NOT NULL,
        mtime bigint NOT NULL, ctime bigint NOT NULL, parent bigint NOT NULL,
        target bytea NOT NULL, verifier bytea);
    CREATE TABLE entries (
        dir_id bigint NOT NULL, name bytea NOT NULL, cookie bigint NOT NULL,
        fileid bigint NOT NULL, PRIMARY KEY (dir_id, name));
    CREATE UNIQUE INDEX entries_by_cookie ON entries (dir_id, cookie);
    CREATE SEQUENCE fileids;
    CREATE SEQUENCE cookies START 3;
    CREATE TABLE roots (share text PRIMARY KEY, fileid bigint NOT NULL);
    CREATE TABLE blocks (digest bytea PRIMARY KEY, refcount bigint NOT NULL,
                         size bigint NOT NULL);
    CREATE TABLE objects (content_id text NOT NULL, idx bigint NOT NULL,
                          digest bytea NOT NULL, PRIMARY KEY (content_id, idx));
    """,
]

_COLS = ("fileid, ftype, mode, nlink, uid, gid, size, rdev_major, rdev_minor, atime, mtime, "
         "ctime, parent, target, verifier")
_F_COLS = ", ".join("f." + c.strip() for c in _COLS.split(","))
MAX_RETRIES = 5


def _record(row: Any) -> FileRecord:
    return FileRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], (row[7], row[8]),
                      row[9], row[10], row[11], row[12], bytes(row[13]),
                      None if row[14] is None else bytes(row[14]))


class _Result:
    """The few result accessors the transaction uses, over a psycopg cursor."""

    __slots__ = ("cur",)

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def first(self) -> Any:
        return self.cur.fetchone()

    def all(self) -> list:
        return self.cur.fetchall()

    def scalar_one(self) -> Any:
        return self.cur.fetchone()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.cur.fetchone()
        return None if row is None else row[0]

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount


@implementer(ITransaction)
class _PgTransaction:
    """Runs on one psycopg connection directly: SQLAlchemy only pools and migrates, since
    its per-statement overhead was most of the cost of a lookup here."""

    __slots__ = ("cur", "write", "lock")

    def __init__(self, cur: Any, write: bool) -> None:
        self.cur = cur
        self.write = write
        self.lock = " FOR UPDATE" if write else ""

    def _x(self, sql: str, params: tuple = ()) -> _Result:
        self.cur.execute(sql, params)
        return _Result(self.cur)

    def get(self, fileid: int) -> FileRecord | None:
        row = self._x(f"SELECT {_COLS} FROM files WHERE fileid = %s{self.lock}",
                      (fileid,)).first()
        return None if row is None else _record(row)

    def put(self, r: FileRecord) -> None:
        self._x(f"INSERT INTO files ({_COLS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (fileid) DO UPDATE SET ftype = EXCLUDED.ftype, mode = EXCLUDED.mode,"
                " nlink = EXCLUDED.nlink, uid = EXCLUDED.uid, gid = EXCLUDED.gid,"
                " size = EXCLUDED.size, rdev_major = EXCLUDED.rdev_major,"
                " rdev_minor = EXCLUDED.rdev_minor, atime = EXCLUDED.atime,"
                " mtime = EXCLUDED.mtime, ctime = EXCLUDED.ctime, parent = EXCLUDED.parent,"
                " target = EXCLUDED.target, verifier = EXCLUDED.verifier",
                (r.fileid, r.ftype, r.mode, r.nlink, r.uid, r.gid, r.size, r.rdev[0], r.rdev[1],
                 r.atime, r.mtime, r.ctime, r.parent, r.target, r.verifier))

    def delete(self, fileid: int) -> None:
        self._x("DELETE FROM files WHERE fileid = %s", (fileid,))

    def new_fileid(self) -> int:
        return self._x("SELECT nextval('fileids')").scalar_one()

    def claim_fileid(self, fileid: int) -> bool:
        # A sequence is not transactional: once raised it stays raised, which only means
        # the id is never used, as after any failed create.
        last, called = self._x("SELECT last_value, is_called FROM fileids").first()
        if fileid <= (last if called else last - 1):
            return False
        self._x("SELECT setval('fileids', %s, true)", (fileid,))
        return True

    def lookup(self, dir_id: int, name: bytes) -> int | None:
        return self._x("SELECT fileid FROM entries WHERE dir_id = %s AND name = %s",
                       (dir_id, name)).scalar_one_or_none()

    def add_entry(self, dir_id: int, name: bytes, fileid: int) -> int:
        return self._x("INSERT INTO entries (dir_id, name, cookie, fileid) "
                       "VALUES (%s, %s, nextval('cookies'), %s) RETURNING cookie",
                       (dir_id, name, fileid)).scalar_one()

    def remove_entry(self, dir_id: int, name: bytes) -> None:
        if self._x("DELETE FROM entries WHERE dir_id = %s AND name = %s",
                   (dir_id, name)).rowcount != 1:
            raise E.NotFound(repr(name))

    def list_entries(self, dir_id: int, after_cookie: int, limit: int,
                     plus: bool = False) -> tuple[list, bool]:
        if plus:
            rows = self._x(
                f"SELECT e.cookie, e.name, e.fileid, {_F_COLS} FROM entries e "
                "LEFT JOIN files f ON f.fileid = e.fileid "
                "WHERE e.dir_id = %s AND e.cookie > %s ORDER BY e.cookie LIMIT %s",
                (dir_id, after_cookie, limit + 1)).all()
            out = [(DirEntry(r[0], bytes(r[1]), r[2]), None if r[3] is None else _record(r[3:]))
                   for r in rows[:limit]]
        else:
            rows = self._x("SELECT cookie, name, fileid FROM entries WHERE dir_id = %s "
                           "AND cookie > %s ORDER BY cookie LIMIT %s",
                           (dir_id, after_cookie, limit + 1)).all()
            out = [(DirEntry(r[0], bytes(r[1]), r[2]), None) for r in rows[:limit]]
        return out, len(rows) <= limit

    def has_entries(self, dir_id: int) -> bool:
        return self._x("SELECT EXISTS (SELECT 1 FROM entries WHERE dir_id = %s)",
                       (dir_id,)).scalar_one()

    def get_root(self, share: str) -> int | None:
        return self._x("SELECT fileid FROM roots WHERE share = %s", (share,)).scalar_one_or_none()

    def set_root(self, share: str, fileid: int) -> None:
        self._x("INSERT INTO roots (share, fileid) VALUES (%s, %s) "
                "ON CONFLICT (share) DO UPDATE SET fileid = EXCLUDED.fileid", (share, fileid))

    def add_usage(self, files: int, nbytes: int) -> None:
        """Usage is derived from the files table when asked for; nothing to keep."""

    def block_refcount(self, digest: bytes) -> int:
        return self._x("SELECT refcount FROM blocks WHERE digest = %s",
                       (digest,)).scalar_one_or_none() or 0

    def block_incref(self, digest: bytes, size: int) -> int:
        return self._x("INSERT INTO blocks (digest, refcount, size) VALUES (%s, 1, %s) "
                       "ON CONFLICT (digest) DO UPDATE SET refcount = blocks.refcount + 1 "
                       "RETURNING refcount", (digest, size)).scalar_one()

    def block_decref(self, digest: bytes) -> int:
        count = self._x("UPDATE blocks SET refcount = refcount - 1 WHERE digest = %s "
                        "RETURNING refcount", (digest,)).scalar_one_or_none()
        if count is None:
            return 0
        if count <= 0:
            self._x("DELETE FROM blocks WHERE digest = %s", (digest,))
            return 0
        return count

    def block_totals(self) -> tuple[int, int]:
        row = self._x("SELECT count(*), coalesce(sum(size), 0) FROM blocks").first()
        return int(row[0]), int(row[1])

    def object_blocks(self, content_id: str) -> dict[int, bytes]:
        rows = self._x("SELECT idx, digest FROM objects WHERE content_id = %s",
                       (content_id,)).all()
        return {r[0]: bytes(r[1]) for r in rows}

    def set_object_block(self, content_id: str, index: int, digest: bytes | None) -> None:
        if digest is None:
            self._x("DELETE FROM objects WHERE content_id = %s AND idx = %s", (content_id, index))
        else:
            self._x("INSERT INTO objects (content_id, idx, digest) VALUES (%s, %s, %s) "
                    "ON CONFLICT (content_id, idx) DO UPDATE SET digest = EXCLUDED.digest",
                    (content_id, index, digest))


RETRY_STATES = ("40001", "40P01")  # serialization_failure, deadlock_detected


@implementer(IMetadataStore)
class PostgresMetadataStore:
    """Metadata in PostgreSQL at ``url`` in schema ``schema``."""

    lazy_commits = False  # every commit is durable

    def __init__(self, name: str, url: str, schema: str | None = None, pool_size: int = 4,
                 reactor: Any = None) -> None:
        self.name = name
        self.schema = schema or "dittofs_" + re.sub(r"[^a-z0-9_]", "_", name.lower())
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", self.schema):
            raise E.InvalidArgument(f"metadata store {name!r}: bad schema name {self.schema!r}")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        self.engine = sa.create_engine(url, pool_size=pool_size, max_overflow=0,
                                       pool_pre_ping=True, pool_recycle=3600)
        schema_name = self.schema

        @event.listens_for(self.engine, "connect")
        def _search_path(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f'SET search_path TO "{schema_name}"')
            dbapi_conn.commit()

        try:
            self.migrate()
        except exc.SQLAlchemyError as e:
            self.engine.dispose()
            raise E.StoreIOError(f"metadata store {name!r}: cannot use PostgreSQL: "
                                 f"{_short(e)}") from None
        self.pool = LazyPool(f"pg-{name}", pool_size, reactor)
        self._closed = False

    def migrate(self) -> int:
        """Bring the schema to the newest version; return it."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{self.schema}"')
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version integer)")
            version = conn.exec_driver_sql("SELECT max(version) FROM schema_version").scalar()
            version = version or 0
            for number, sql in enumerate(MIGRATIONS, start=1):
                if number > version:
                    for statement in (s for s in sql.split(";") if s.strip()):
                        conn.exec_driver_sql(statement)
                    conn.exec_driver_sql("INSERT INTO schema_version VALUES (%s)", (number,))
                    log.info("metadata store {name}: schema {schema} at version {v}",
                             name=self.name, schema=self.schema, v=number)
            return max(version, len(MIGRATIONS))

    def _run(self, fn: Callable[[Any], Any], write: bool) -> Any:
        for attempt in range(MAX_RETRIES):
            try:
                with self.engine.connect() as conn:
                    raw = conn.connection.driver_connection
                    # Reads run statement by statement (READ COMMITTED gives a multi-statement
                    # read no stronger snapshot), sparing BEGIN/COMMIT round trips.
                    raw.autocommit = not write
                    try:
                        with raw.cursor() as cur:
                            result = fn(_PgTransaction(cur, write))
                        if write:
                            raw.commit()
                        return result
                    except BaseException:
                        if write and not raw.closed:
                            raw.rollback()
                        raise
            except psycopg.Error as e:
                if getattr(e, "sqlstate", None) in RETRY_STATES and attempt + 1 < MAX_RETRIES:
                    continue
                raise E.StoreIOError(f"PostgreSQL: {_short(e)}") from None
            except exc.SQLAlchemyError as e:
                raise E.StoreIOError(f"PostgreSQL: {_short(e)}") from None
        raise E.StoreIOError("PostgreSQL: retries exhausted")  # pragma: no cover

    def transact(self, fn: Callable[[Any], Any], write: bool = True,
                 durable: bool = True) -> defer.Deferred:
        """Every commit is durable here (``durable`` is accepted and ignored)."""
        if self._closed:
            return defer.fail(E.StoreIOError(f"metadata store {self.name!r} is closed"))
        return self.pool.run(self._run, fn, write)

    def sync(self) -> defer.Deferred:
        return defer.succeed(None)  # each commit already waited for the server's WAL flush

    def get(self, fileid: int) -> defer.Deferred:
        return self.transact(lambda txn: txn.get(fileid), write=False)

    def usage(self) -> defer.Deferred:
        def fn(txn: _PgTransaction) -> tuple[int, int]:
            row = txn._x("SELECT count(*), coalesce(sum(size), 0) FROM files").first()
            return int(row[0]), int(row[1])
        return self.transact(fn, write=False)

    def close(self) -> defer.Deferred:
        if not self._closed:
            self._closed = True
            self.pool.stop()
            self.engine.dispose()
        return defer.succeed(None)


def _short(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__
