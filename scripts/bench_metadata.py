"""Metadata benchmarks: through MetadataService per backend, and raw embedded engines."""

from __future__ import annotations

import argparse
import os
import sqlite3
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet import defer, task  # noqa: E402

from dittofs.metadata.service import MetadataService  # noqa: E402
from dittofs.metadata.types import FileType, Identity  # noqa: E402
from dittofs.runtime.shares import Share  # noqa: E402

ME = Identity(1000, 1000, ())
BATCH = 64  # operations in flight, as many NFS clients would have


async def service_bench(store, n: int, listing: int) -> dict:
    md = MetadataService()
    share = Share("/bench", 1, store, None)
    share.root_id = await md.ensure_root(share, 0, 0, 0o777)
    d = (await md.create(share, ME, share.root_id, b"big", FileType.DIR)).file
    names = [b"file-%07d" % i for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        await defer.gatherResults([defer.ensureDeferred(
            md.create(share, ME, d.fileid, nm, FileType.REG)) for nm in names[i:i + BATCH]])
    creates = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        await defer.gatherResults([defer.ensureDeferred(
            md.lookup(share, ME, d.fileid, nm)) for nm in names[i:i + BATCH]])
    lookups = n / (time.perf_counter() - t0)
    sub = (await md.create(share, ME, share.root_id, b"list", FileType.DIR)).file
    for i in range(0, listing, BATCH):
        await defer.gatherResults([defer.ensureDeferred(
            md.create(share, ME, sub.fileid, b"e%06d" % j, FileType.REG))
            for j in range(i, min(i + BATCH, listing))])
    t0 = time.perf_counter()
    cookie, seen = 0, 0
    while True:
        _, chunk, eof = await md.readdir(share, ME, sub.fileid, cookie, 1000, plus=True)
        seen += len(chunk)
        if eof:
            break
        cookie = chunk[-1][0].cookie
    assert seen == listing + 2, seen
    readdir = time.perf_counter() - t0
    await store.close()
    return {"creates/s": creates, "lookups/s": lookups, f"readdirplus {listing} s": readdir}


def make_stores(tmp: str):
    from dittofs.metadata.stores.lmdb import LmdbMetadataStore
    from dittofs.metadata.stores.memory import MemoryMetadataStore
    yield "memory", lambda: MemoryMetadataStore("bench"), None
    yield "lmdb", lambda: LmdbMetadataStore("bench", Path(tmp) / "lmdb"), None
    from tests.support.postgres import PostgresCluster, pg_bindir
    if pg_bindir() is None:
        print("postgres: skipped (PostgreSQL is not installed)")
        return
    from dittofs.metadata.stores.postgres import PostgresMetadataStore
    pg = PostgresCluster().start()
    yield "postgres", lambda: PostgresMetadataStore("bench", pg.url), pg.cleanup


async def run_metadata(reactor, args) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, cleanup in make_stores(tmp):
            try:
                rows.append((name, await service_bench(make(), args.files, args.listing)))
            finally:
                if cleanup:
                    cleanup()
    cols = list(rows[0][1])
    print(f"MetadataService, {args.files} files, {BATCH} in flight")
    print(f"{'backend':10}" + "".join(f"{c:>24}" for c in cols))
    for name, r in rows:
        print(f"{name:10}" + "".join(f"{r[c]:>24,.2f}" for c in cols))


def engines(args) -> None:
    """Raw engines, 40-byte keys like dir-id/name, one commit per 100 puts."""
    import lmdb
    n = args.files
    keys = [struct.pack(">Q", i % 10) + b"/name-%021d" % i for i in range(n)]
    val = os.urandom(100)
    print(f"raw engines: {n} puts (100 per commit), {n} gets, one 10,000-key prefix scan")
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp + "/l", map_size=8 << 30, sync=True, metasync=False)
        t0 = time.perf_counter()
        for i in range(0, n, 100):
            with env.begin(write=True) as t:
                for k in keys[i:i + 100]:
                    t.put(k, val)
        put = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with env.begin() as t:
            for k in keys:
                t.get(k)
        get = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with env.begin() as t:
            cur = t.cursor()
            cur.set_range(struct.pack(">Q", 3))
            got = 0
            for _k, _ in cur:
                got += 1
                if got == 10000:
                    break
        scan = time.perf_counter() - t0
        print(f"lmdb     puts/s {put:>12,.0f}  gets/s {get:>12,.0f}  scan {scan * 1000:8.2f} ms")
        db = sqlite3.connect(tmp + "/s.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
        t0 = time.perf_counter()
        for i in range(0, n, 100):
            db.execute("BEGIN")
            db.executemany("INSERT INTO kv VALUES (?, ?)", [(k, val) for k in keys[i:i + 100]])
            db.execute("COMMIT")
        put = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for k in keys:
            db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()
        get = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = db.execute("SELECT k, v FROM kv WHERE k >= ? LIMIT 10000",
                          (struct.pack(">Q", 3),)).fetchall()
        scan = time.perf_counter() - t0
        assert len(rows) == 10000
        print(f"sqlite   puts/s {put:>12,.0f}  gets/s {get:>12,.0f}  scan {scan * 1000:8.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["metadata", "engines"])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--listing", type=int, default=10_000)
    args = ap.parse_args()
    if args.what == "engines":
        engines(args)
    else:
        task.react(lambda reactor: defer.ensureDeferred(run_metadata(reactor, args)))


if __name__ == "__main__":
    main()
