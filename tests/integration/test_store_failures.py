"""Metadata stores that cannot open, or go away while serving."""

from __future__ import annotations

import pytest

from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, Proc
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from tests.integration.conftest import stop_and_check
from tests.support.postgres import PostgresCluster, pg_bindir
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.integration


def start_fails(config) -> str:
    srv = ServerProcess(config)
    try:
        with pytest.raises(RuntimeError) as e:
            srv.start()
        assert "exited early" in str(e.value) and srv.proc.returncode != 0
        return str(e.value)
    finally:
        srv.cleanup()


def test_unusable_lmdb_directory_is_a_startup_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = start_fails({"metadata_stores": {"default": {"type": "lmdb",
                                                       "path": str(blocker / "db")}}})
    assert "metadata_stores.default" in out and str(blocker) in out


def test_unreachable_postgres_is_a_startup_error():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    out = start_fails({"metadata_stores": {"default": {"type": "postgres", "url": url}}})
    assert "metadata_stores.default" in out and "PostgreSQL" in out


def test_missing_postgres_url_names_the_key():
    out = start_fails({"metadata_stores": {"default": {"type": "postgres"}}})
    assert "metadata_stores.default.url" in out


@pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed")
def test_postgres_going_away_gives_io_errors_then_recovers():
    pg = PostgresCluster().start()
    srv = ServerProcess({"metadata_stores": {"default": {"type": "postgres", "url": pg.url}}})
    try:
        srv.start()
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            st, made = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"before"),
                                                       (0, EMPTY_SATTR)))
            assert st == NfsStat.NFS3_OK
            pg.stop("fast")  # the test cluster runs without synchronous commit
            st, _ = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"during"),
                                                    (0, EMPTY_SATTR)))
            assert st == NfsStat.NFS3ERR_IO
            assert c.nfs(Proc.GETATTR, made.obj)[0] == NfsStat.NFS3ERR_IO
            pg.restart()
            assert c.nfs(Proc.GETATTR, made.obj)[0] == NfsStat.NFS3_OK
            st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(root, 0, bytes(8), 4096))
            assert sorted(e.name for e in r.entries) == [b".", b"..", b"before"]
        assert srv.alive()
    finally:
        stop_and_check(srv)
        pg.cleanup()
