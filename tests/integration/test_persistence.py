"""Persistent metadata stores across restarts (clean and SIGKILL): old handles keep working."""

from __future__ import annotations

import pytest

from dittofs.metadata.types import FileType
from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from tests.integration.conftest import metadata_config, stop_and_check
from tests.integration.test_procedures import sattr
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess, kill_during, restart

pytestmark = pytest.mark.integration
OK = NfsStat.NFS3_OK


def build_tree(c, root, tag):
    """Make a small tree; return {path: (handle, attributes)} of everything made."""
    made = {}
    st, d1 = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(root, b"d" + tag), sattr(mode=0o750)))
    assert st == OK
    made["d"] = d1.obj
    st, d2 = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(d1.obj, b"deeper"), EMPTY_SATTR))
    made["d/deeper"] = d2.obj
    for i in range(20):
        st, f = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(d2.obj, b"f%02d" % i),
                                                (0, sattr(mode=0o600))))
        assert st == OK
        st, w = c.nfs(Proc.WRITE, C.WriteArgs(f.obj, 0, i, StableHow.FILE_SYNC, b"x" * i))
        assert st == OK
        made[f"d/deeper/f{i:02d}"] = f.obj
    st, s = c.nfs(Proc.SYMLINK, C.SymlinkArgs(DirOpArgs3(d1.obj, b"link"), EMPTY_SATTR,
                                              b"deeper/f01"))
    made["d/link"] = s.obj
    st, _ = c.nfs(Proc.LINK, C.LinkArgs(made["d/deeper/f05"], DirOpArgs3(d1.obj, b"hard")))
    assert st == OK
    st, _ = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(d2.obj, b"f19"),
                                            DirOpArgs3(d1.obj, b"renamed")))
    assert st == OK
    return {path: (fh, c.nfs(Proc.GETATTR, fh)[1]) for path, fh in made.items()}


def check_tree(c, made):
    for path, (fh, attrs) in made.items():
        st, now = c.nfs(Proc.GETATTR, fh)
        assert st == OK, (path, st)
        assert now == attrs, path
    d = made["d"][0]
    st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(d, 0, bytes(8), 8192))
    assert st == OK and sorted(e.name for e in r.entries) == sorted(
        [b".", b"..", b"deeper", b"link", b"hard", b"renamed"])
    st, rl = c.nfs(Proc.READLINK, made["d/link"][0])
    assert rl.data == b"deeper/f01"
    st, lk = c.nfs(Proc.LOOKUP, DirOpArgs3(d, b"hard"))
    assert lk.object == made["d/deeper/f05"][0] and lk.obj_attributes.nlink == 2
    st, lk = c.nfs(Proc.LOOKUP, DirOpArgs3(made["d/deeper"][0], b"f19"))
    assert st == NfsStat.NFS3ERR_NOENT
    for i in range(19):  # content written with FILE_SYNC is there too
        st, r = c.nfs(Proc.READ, C.ReadArgs(made[f"d/deeper/f{i:02d}"][0], 0, 100))
        assert st == OK and r.data == b"x" * i, i


@pytest.mark.parametrize("kind", ["lmdb+fs", "postgres+s3"])
def test_tree_and_handles_survive_restarts(kind, request):
    meta, blocks = kind.split("+")
    srv = ServerProcess(metadata_config(meta, request, blocks)).start()
    try:
        with NfsClient(srv.port, uid=1000, gid=1000) as c:
            root = c.mount(b"/export")[1].fhandle
            clean = build_tree(c, root, b"1")
        restart(srv)
        with NfsClient(srv.port, uid=1000, gid=1000) as c:
            check_tree(c, clean)
            assert c.mount(b"/export")[1].fhandle == root
            killed = build_tree(c, root, b"2")  # every reply seen before the kill
        restart(srv, kill=True)
        with NfsClient(srv.port, uid=1000, gid=1000) as c:
            check_tree(c, clean)
            check_tree(c, killed)
            st, a = c.nfs(Proc.GETATTR, killed["d/deeper/f07"][0])
            assert a.type == FileType.REG and a.size == 7 and a.mode == 0o600
    finally:
        stop_and_check(srv)


def test_sigkill_at_random_moments_leaves_no_torn_entries(request):
    """Kill -9 while a client creates, renames and removes; every acknowledged change is
    there after restart, and every directory entry leads to a valid file."""
    import random

    rng = random.Random(7)
    srv = ServerProcess(metadata_config("lmdb", request, "fs")).start()
    acknowledged: set[bytes] = set()
    in_flight: dict[bytes, bytes] = {}  # a rename sent but not answered: old -> new
    try:
        for round_no in range(5):
            def churn(stop, round_no=round_no):
                try:
                    with NfsClient(srv.port, uid=1000, gid=1000, timeout=5) as c:
                        root = c.mount(b"/export")[1].fhandle
                        i = 0
                        while not stop.is_set():
                            name = b"r%d-%05d" % (round_no, i)
                            st, _ = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, name),
                                                                    (0, EMPTY_SATTR)))
                            if st != OK:
                                return
                            acknowledged.add(name)
                            if i % 3 == 0:
                                new = name + b"-moved"
                                in_flight[name] = new
                                st, _ = c.nfs(Proc.RENAME, C.RenameArgs(
                                    DirOpArgs3(root, name), DirOpArgs3(root, new)))
                                if st == OK:
                                    acknowledged.discard(name)
                                    acknowledged.add(new)
                                del in_flight[name]
                            i += 1
                except (OSError, ConnectionError):
                    pass  # the server was killed under us

            kill_during(srv, churn, rng.uniform(0.2, 0.8), join=10)
            # A reply in flight when the server died may or may not have been applied:
            # only what the client saw acknowledged must be there.
            with NfsClient(srv.port) as c:
                root = c.mount(b"/export")[1].fhandle
                names, cookie, verf = set(), 0, bytes(8)
                while True:
                    st, r = c.nfs(Proc.READDIRPLUS,
                                  C.ReaddirplusArgs(root, cookie, verf, 65536, 1 << 20))
                    assert st == OK
                    for e in r.entries:
                        if e.name in (b".", b".."):
                            continue
                        names.add(e.name)
                        assert e.name_attributes is not None, e.name  # no dangling entry
                        assert c.nfs(Proc.GETATTR, e.name_handle)[0] == OK
                    if r.eof:
                        break
                    cookie, verf = r.entries[-1].cookie, r.cookieverf
                missing = {n for n in acknowledged - names if in_flight.get(n) not in names}
                assert not missing, sorted(missing)[:5]
                in_flight.clear()
                acknowledged.clear()
                acknowledged.update(names)
    finally:
        stop_and_check(srv)


def test_persistent_metadata_over_memory_content_warns(request):
    srv = ServerProcess(metadata_config("lmdb", request, "memory")).start()
    try:
        assert "content is kept in memory" in srv.log_text()
    finally:
        stop_and_check(srv)


def test_paths_do_not_escape_the_share(server):
    from dittofs.nfs.const import MountStat
    with NfsClient(server.port) as c:
        assert c.mount(b"/export/../etc")[0] in (MountStat.MNT3ERR_INVAL,
                                                 MountStat.MNT3ERR_NOENT)
        root = c.mount(b"/export")[1].fhandle
        st, up = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b".."))
        st2, here = c.nfs(Proc.GETATTR, root)
        assert st == OK and up.obj_attributes.fileid == here.fileid
        assert c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"../etc"))[0] == NfsStat.NFS3ERR_INVAL
