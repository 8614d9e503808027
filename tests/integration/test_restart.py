"""Across a restart: a new write verifier, and handles that verify but are stale (memory)."""

from __future__ import annotations

import pytest

from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess, restart

pytestmark = pytest.mark.integration


def test_verifier_changes_and_old_handles_are_stale():
    srv = ServerProcess({"metadata_stores": {"default": {"type": "memory"}},
                         "block_stores": {"default": {"type": "memory"}}}).start()
    try:
        with NfsClient(srv.port) as c:
            st, ok = c.mount(b"/export")
            st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(ok.fhandle, b"f"),
                                                      (0, EMPTY_SATTR)))
            fh = res.obj
            st, w = c.nfs(Proc.WRITE, C.WriteArgs(fh, 0, 1, StableHow.UNSTABLE, b"x"))
            verf1 = w.verf
        restart(srv)
        with NfsClient(srv.port) as c:
            # The handle key persists in the data dir: the old handle is ours but stale.
            assert c.nfs(Proc.GETATTR, fh)[0] == NfsStat.NFS3ERR_STALE
            st, ok = c.mount(b"/export")
            st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(ok.fhandle, b"g"),
                                                      (0, EMPTY_SATTR)))
            st, w = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, 0, 1, StableHow.UNSTABLE, b"x"))
            assert st == NfsStat.NFS3_OK and w.verf != verf1
            st, cm = c.nfs(Proc.COMMIT, C.CommitArgs(res.obj, 0, 0))
            assert cm.verf == w.verf
    finally:
        srv.cleanup()


def test_bad_config_names_the_key(tmp_path):
    srv = ServerProcess({"nfs": {"port": "not-a-port"}})
    with pytest.raises(RuntimeError) as e:
        srv.start()
    assert "nfs.port" in str(e.value)
    srv.cleanup()
    srv = ServerProcess({"shares": [{"name": "/x", "metadata_store": "nope"}]})
    with pytest.raises(RuntimeError) as e:
        srv.start()
    assert "shares[0].metadata_store" in str(e.value)
    srv.cleanup()


def test_default_configuration_is_embedded_and_persistent():
    srv = ServerProcess().start()  # no configuration at all
    try:
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"kept"),
                                                      (0, EMPTY_SATTR)))
            c.nfs(Proc.WRITE, C.WriteArgs(res.obj, 0, 5, StableHow.FILE_SYNC, b"hello"))
        restart(srv)
        with NfsClient(srv.port) as c:
            st, r = c.nfs(Proc.READ, C.ReadArgs(res.obj, 0, 10))
            assert st == NfsStat.NFS3_OK and r.data == b"hello"
        assert (srv.dir / "data" / "metadata" / "default").is_dir()
        assert (srv.dir / "data" / "blocks" / "default").is_dir()
    finally:
        srv.cleanup()


def test_readdir_cookies_stay_valid_across_a_restart():
    srv = ServerProcess().start()  # embedded default: cookies are stable, so is the verifier
    try:
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            for i in range(60):
                c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"e%02d" % i), (0, EMPTY_SATTR)))
            st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(root, 0, bytes(8), 512))
            assert st == NfsStat.NFS3_OK and not r.eof
            first = [e.name for e in r.entries]
            cookie, verf = r.entries[-1].cookie, r.cookieverf
        restart(srv)
        with NfsClient(srv.port) as c:
            rest, eof = [], False
            while not eof:
                st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(root, cookie, verf, 4096))
                assert st == NfsStat.NFS3_OK
                rest += [e.name for e in r.entries]
                eof = r.eof
                if r.entries:
                    cookie = r.entries[-1].cookie
            names = [n for n in first + rest if n not in (b".", b"..")]
            assert sorted(names) == [b"e%02d" % i for i in range(60)]
    finally:
        srv.cleanup()
