"""Every NFSv3 procedure against the real server, through our own codec, field by field."""

from __future__ import annotations

import time

import pytest

from dittofs.metadata.types import FileType
from dittofs.nfs import codec as C
from dittofs.nfs.const import (
    MAX_IO,
    NFS_PROGRAM,
    NFS_V3,
    Access,
    CreateMode,
    MountStat,
    NfsStat,
    Proc,
    StableHow,
    TimeHow,
)
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3, NfsTime3, Sattr3, SpecData3
from dittofs.rpc.xdr import VOID, encode
from tests.support.rpcclient import NfsClient

pytestmark = pytest.mark.integration
OK = NfsStat.NFS3_OK
ZERO8 = bytes(8)


def sattr(mode=None, uid=None, gid=None, size=None, mtime=None):
    m = (TimeHow.DONT_CHANGE, None) if mtime is None else (TimeHow.SET_TO_CLIENT_TIME, mtime)
    return Sattr3(mode, uid, gid, size, (TimeHow.DONT_CHANGE, None), m)


@pytest.fixture()
def c(server):
    with NfsClient(server.port, uid=1000, gid=1000, gids=(1000, 50)) as client:
        yield client


@pytest.fixture()
def root(c):
    st, ok = c.mount(b"/export")
    assert st == MountStat.MNT3_OK
    assert 1 in ok.auth_flavors  # AUTH_UNIX offered
    return ok.fhandle


@pytest.fixture()
def workdir(c, root, request):
    name = request.node.name.encode()[:200]
    st, res = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(root, name), sattr(mode=0o755)))
    assert st == OK, st
    return res.obj


def create(c, d, name, mode=CreateMode.GUARDED, attrs=None):
    how = (mode, attrs or sattr(mode=0o644)) if mode != CreateMode.EXCLUSIVE else (mode, attrs)
    return c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(d, name), how))


def write(c, fh, offset, data, stable=StableHow.FILE_SYNC):
    return c.nfs(Proc.WRITE, C.WriteArgs(fh, offset, len(data), stable, data))


def read(c, fh, offset, count):
    return c.nfs(Proc.READ, C.ReadArgs(fh, offset, count))


def test_null(c):
    assert c.call(NFS_PROGRAM, NFS_V3, Proc.NULL, VOID, None, VOID) is None


def test_getattr_root(c, root):
    st, a = c.nfs(Proc.GETATTR, root)
    assert st == OK
    assert a.type == FileType.DIR and a.mode == 0o777 and a.nlink >= 2
    assert a.uid == 0 and a.gid == 0


def test_create_write_read_commit(c, workdir):
    st, res = create(c, workdir, b"f")
    assert st == OK
    assert res.obj is not None and len(res.obj) <= 64
    attrs = res.obj_attributes
    assert attrs.type == FileType.REG and attrs.mode == 0o644 and attrs.size == 0
    assert attrs.uid == 1000 and attrs.gid == 1000 and attrs.nlink == 1
    assert res.dir_wcc.before is not None and res.dir_wcc.after is not None
    fh = res.obj

    st, w = write(c, fh, 0, b"hello world", StableHow.UNSTABLE)
    assert st == OK and w.count == 11 and w.committed == StableHow.UNSTABLE
    assert w.file_wcc.before.size == 0 and w.file_wcc.after.size == 11
    verf = w.verf
    st, w = write(c, fh, 6, b"WORLD!", StableHow.FILE_SYNC)
    assert st == OK and w.committed == StableHow.FILE_SYNC and w.verf == verf
    assert w.file_wcc.after.size == 12

    st, r = read(c, fh, 0, 100)
    assert st == OK and r.data == b"hello WORLD!" and r.count == 12 and r.eof
    st, r = read(c, fh, 2, 3)
    assert st == OK and r.data == b"llo" and not r.eof
    st, r = read(c, fh, 100, 10)
    assert st == OK and r.count == 0 and r.eof and r.data == b""

    st, cm = c.nfs(Proc.COMMIT, C.CommitArgs(fh, 0, 0))
    assert st == OK and cm.verf == verf and cm.file_wcc.after.size == 12


def test_sparse_write_reads_zeros(c, workdir):
    st, res = create(c, workdir, b"sparse")
    fh = res.obj
    st, w = write(c, fh, 10 * 1024 * 1024, b"end")
    assert st == OK and w.file_wcc.after.size == 10 * 1024 * 1024 + 3
    st, r = read(c, fh, 5 * 1024 * 1024 - 10, 20)
    assert st == OK and r.data == bytes(20)
    st, r = read(c, fh, 10 * 1024 * 1024 - 2, 10)
    assert r.data == b"\0\0end" and r.eof


def test_large_read_is_capped_at_rtmax(c, workdir):
    st, res = create(c, workdir, b"big")
    fh = res.obj
    data = bytes(range(256)) * (MAX_IO // 256)
    assert write(c, fh, 0, data)[0] == OK
    assert write(c, fh, MAX_IO, data)[0] == OK
    st, r = read(c, fh, 0, 4 * MAX_IO)
    assert st == OK and r.count == MAX_IO and r.data == data and not r.eof


def test_setattr_truncate_mode_times_and_guard(c, workdir):
    st, res = create(c, workdir, b"s")
    fh = res.obj
    write(c, fh, 0, b"0123456789")
    st, a = c.nfs(Proc.GETATTR, fh)
    guard = NfsTime3(a.ctime_s, a.ctime_ns)
    st, w = c.nfs(Proc.SETATTR, C.SetattrArgs(fh, sattr(size=4, mode=0o600), guard))
    assert st == OK
    assert w.before.size == 10 and w.after.size == 4 and w.after.mode == 0o600
    st, r = read(c, fh, 0, 100)
    assert r.data == b"0123"
    # The guard was consumed: the same ctime no longer matches.
    st, w = c.nfs(Proc.SETATTR, C.SetattrArgs(fh, sattr(mode=0o644), guard))
    assert st == NfsStat.NFS3ERR_NOT_SYNC
    assert w.after is not None and w.after.mode == 0o600
    st, w = c.nfs(Proc.SETATTR, C.SetattrArgs(fh, sattr(mtime=NfsTime3(1_000_000_000, 5)), None))
    assert st == OK and (w.after.mtime_s, w.after.mtime_ns) == (1_000_000_000, 5)
    # Extending with SETATTR reads back zeros.
    c.nfs(Proc.SETATTR, C.SetattrArgs(fh, sattr(size=8), None))
    assert read(c, fh, 0, 100)[1].data == b"0123\0\0\0\0"


def test_setattr_chown_needs_root(c, workdir):
    st, res = create(c, workdir, b"own")
    st, w = c.nfs(Proc.SETATTR, C.SetattrArgs(res.obj, sattr(uid=0), None))
    assert st == NfsStat.NFS3ERR_PERM
    st, w = c.nfs(Proc.SETATTR, C.SetattrArgs(res.obj, sattr(gid=50), None))
    assert st == OK and w.after.gid == 50  # a group the caller is in


def test_lookup_and_access(c, workdir):
    create(c, workdir, b"x")
    st, lk = c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"x"))
    assert st == OK and lk.obj_attributes.type == FileType.REG
    assert lk.dir_attributes.type == FileType.DIR
    st, lk2 = c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"missing"))
    assert st == NfsStat.NFS3ERR_NOENT and lk2 is not None and lk2.type == FileType.DIR
    st, dot = c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"."))
    assert st == OK and dot.obj_attributes.fileid == lk.dir_attributes.fileid
    all_bits = 0x3F
    st, ac = c.nfs(Proc.ACCESS, C.AccessArgs(lk.object, all_bits))
    assert st == OK
    assert ac.access == Access.READ | Access.MODIFY | Access.EXTEND  # 0644, owner, no x
    st, ac = c.nfs(Proc.ACCESS, C.AccessArgs(workdir, all_bits))
    assert ac.access == all_bits  # our own 0755 directory
    st, tool = create(c, workdir, b"tool", attrs=sattr(mode=0o755))
    st, ac = c.nfs(Proc.ACCESS, C.AccessArgs(tool.obj, all_bits))
    assert ac.access == Access.READ | Access.MODIFY | Access.EXTEND | Access.EXECUTE
    st, d = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"r-x"), sattr(mode=0o555)))
    st, ac = c.nfs(Proc.ACCESS, C.AccessArgs(d.obj, all_bits))
    assert ac.access == Access.READ | Access.LOOKUP | Access.EXECUTE  # no MODIFY or DELETE
    st, ac = c.nfs(Proc.ACCESS, C.AccessArgs(d.obj, Access.LOOKUP | Access.MODIFY))
    assert ac.access == Access.LOOKUP  # only what was asked, of what is granted


def test_access_for_other_user(server, workdir, c):
    st, res = create(c, workdir, b"private", attrs=sattr(mode=0o600))
    with NfsClient(server.port, uid=2000, gid=2000) as other:
        st, ac = other.nfs(Proc.ACCESS, C.AccessArgs(res.obj, 0x3F))
        assert st == OK and ac.access == 0
        st, r = read(other, res.obj, 0, 10)
        assert st == NfsStat.NFS3ERR_ACCES
        st, w = write(other, res.obj, 0, b"x")
        assert st == NfsStat.NFS3ERR_ACCES
        st, _ = create(other, workdir, b"intruder")
        assert st == NfsStat.NFS3ERR_ACCES  # 0755 directory of uid 1000


def test_supplementary_group_grants_access(server, workdir, c):
    st, res = create(c, workdir, b"grp", attrs=sattr(mode=0o660, gid=50))
    assert res.obj_attributes.gid == 50
    with NfsClient(server.port, uid=3000, gid=3000, gids=(50,)) as member:
        assert write(member, res.obj, 0, b"member")[0] == OK
    with NfsClient(server.port, uid=3001, gid=3001) as outsider:
        assert write(outsider, res.obj, 0, b"x")[0] == NfsStat.NFS3ERR_ACCES


def test_sticky_directory(server, c, workdir):
    st, d = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"tmp"), sattr(mode=0o1777)))
    assert st == OK and d.obj_attributes.mode == 0o1777
    tmp = d.obj
    with NfsClient(server.port, uid=4000, gid=4000) as a, \
            NfsClient(server.port, uid=4001, gid=4001) as b:
        assert create(a, tmp, b"a-file")[0] == OK
        st, w = b.nfs(Proc.REMOVE, DirOpArgs3(tmp, b"a-file"))
        assert st == NfsStat.NFS3ERR_ACCES
        st, _ = b.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(tmp, b"a-file"),
                                                DirOpArgs3(tmp, b"stolen")))
        assert st == NfsStat.NFS3ERR_ACCES
        assert a.nfs(Proc.REMOVE, DirOpArgs3(tmp, b"a-file"))[0] == OK


def test_root_is_squashed(server, workdir):
    with NfsClient(server.port, uid=0, gid=0) as rootc:
        st, res = create(rootc, workdir, b"by-root")
        assert st == NfsStat.NFS3ERR_ACCES  # squashed to nobody: 0755 dir of uid 1000
        st, r = rootc.mount(b"/export")
        st, res = create(rootc, r.fhandle, b"by-root-%d" % time.time_ns())
        assert st == OK and res.obj_attributes.uid == 65534


def test_exclusive_create_is_idempotent(c, workdir):
    verf = b"12345678"
    st, r1 = create(c, workdir, b"ex", CreateMode.EXCLUSIVE, verf)
    assert st == OK
    st, r2 = create(c, workdir, b"ex", CreateMode.EXCLUSIVE, verf)
    assert st == OK and r2.obj == r1.obj  # a retransmission
    st, _ = create(c, workdir, b"ex", CreateMode.EXCLUSIVE, b"87654321")
    assert st == NfsStat.NFS3ERR_EXIST
    st, _ = create(c, workdir, b"ex", CreateMode.GUARDED)
    assert st == NfsStat.NFS3ERR_EXIST
    write(c, r1.obj, 0, b"data")
    st, r3 = create(c, workdir, b"ex", CreateMode.UNCHECKED, sattr(size=0))
    assert st == OK and r3.obj == r1.obj and r3.obj_attributes.size == 0


def test_mkdir_rmdir_nlink(c, workdir):
    st, before = c.nfs(Proc.GETATTR, workdir)
    st, d = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"sub"), sattr(mode=0o700)))
    assert st == OK and d.obj_attributes.nlink == 2 and d.obj_attributes.mode == 0o700
    assert d.dir_wcc.after.nlink == before.nlink + 1
    st, _ = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"sub"), EMPTY_SATTR))
    assert st == NfsStat.NFS3ERR_EXIST
    create(c, d.obj, b"inner")
    st, w = c.nfs(Proc.RMDIR, DirOpArgs3(workdir, b"sub"))
    assert st == NfsStat.NFS3ERR_NOTEMPTY and w.after is not None
    assert c.nfs(Proc.REMOVE, DirOpArgs3(d.obj, b"inner"))[0] == OK
    st, w = c.nfs(Proc.RMDIR, DirOpArgs3(workdir, b"sub"))
    assert st == OK and w.after.nlink == before.nlink
    st, _ = c.nfs(Proc.GETATTR, d.obj)
    assert st == NfsStat.NFS3ERR_STALE


def test_symlink_readlink(c, workdir):
    st, s = c.nfs(Proc.SYMLINK, C.SymlinkArgs(DirOpArgs3(workdir, b"ln"), EMPTY_SATTR,
                                              b"../target/path"))
    assert st == OK and s.obj_attributes.type == FileType.LNK
    assert s.obj_attributes.size == len(b"../target/path")
    st, rl = c.nfs(Proc.READLINK, s.obj)
    assert st == OK and rl.data == b"../target/path"
    st, _ = c.nfs(Proc.READLINK, workdir)
    assert st == NfsStat.NFS3ERR_INVAL


def test_mknod(c, server, workdir):
    st, f = c.nfs(Proc.MKNOD, C.MknodArgs(DirOpArgs3(workdir, b"fifo"),
                                          (FileType.FIFO, sattr(mode=0o600))))
    assert st == OK and f.obj_attributes.type == FileType.FIFO
    st, s = c.nfs(Proc.MKNOD, C.MknodArgs(DirOpArgs3(workdir, b"sock"),
                                          (FileType.SOCK, EMPTY_SATTR)))
    assert st == OK and s.obj_attributes.type == FileType.SOCK
    dev = C.DeviceData(EMPTY_SATTR, SpecData3(8, 1))
    st, _ = c.nfs(Proc.MKNOD, C.MknodArgs(DirOpArgs3(workdir, b"blk"), (FileType.BLK, dev)))
    assert st == NfsStat.NFS3ERR_PERM  # device nodes need root (and uid 1000 is not)
    st, _ = c.nfs(Proc.MKNOD, C.MknodArgs(DirOpArgs3(workdir, b"reg"), (FileType.REG, None)))
    assert st == NfsStat.NFS3ERR_BADTYPE
    st, r = read(c, f.obj, 0, 10)
    assert st == NfsStat.NFS3ERR_INVAL


def test_remove_and_link_counts(c, workdir):
    st, res = create(c, workdir, b"orig")
    fh = res.obj
    write(c, fh, 0, b"shared")
    st, lk = c.nfs(Proc.LINK, C.LinkArgs(fh, DirOpArgs3(workdir, b"alias")))
    assert st == OK and lk.file_attributes.nlink == 2
    assert lk.linkdir_wcc.before is not None and lk.linkdir_wcc.after is not None
    st, _ = c.nfs(Proc.LINK, C.LinkArgs(fh, DirOpArgs3(workdir, b"alias")))
    assert st == NfsStat.NFS3ERR_EXIST
    st, _ = c.nfs(Proc.LINK, C.LinkArgs(workdir, DirOpArgs3(workdir, b"dirlink")))
    assert st in (NfsStat.NFS3ERR_PERM, NfsStat.NFS3ERR_ISDIR)
    st, w = c.nfs(Proc.REMOVE, DirOpArgs3(workdir, b"orig"))
    assert st == OK
    st, a = c.nfs(Proc.GETATTR, fh)
    assert st == OK and a.nlink == 1
    st, lk = c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"alias"))
    assert read(c, lk.object, 0, 10)[1].data == b"shared"
    assert c.nfs(Proc.REMOVE, DirOpArgs3(workdir, b"alias"))[0] == OK
    assert c.nfs(Proc.GETATTR, fh)[0] == NfsStat.NFS3ERR_STALE
    assert c.nfs(Proc.REMOVE, DirOpArgs3(workdir, b"alias"))[0] == NfsStat.NFS3ERR_NOENT
    assert c.nfs(Proc.REMOVE, DirOpArgs3(workdir, b"."))[0] != OK


def test_rename_semantics(c, workdir):
    create(c, workdir, b"a")
    st, b = create(c, workdir, b"b")
    write(c, b.obj, 0, b"old b")
    st, a = c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"a"))
    write(c, a.object, 0, b"new a")
    # Replace an existing file atomically.
    st, rn = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(workdir, b"a"), DirOpArgs3(workdir, b"b")))
    assert st == OK and rn.fromdir_wcc.after is not None and rn.todir_wcc.before is not None
    assert c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"a"))[0] == NfsStat.NFS3ERR_NOENT
    st, lk = c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"b"))
    assert lk.object == a.object and read(c, lk.object, 0, 10)[1].data == b"new a"
    assert c.nfs(Proc.GETATTR, b.obj)[0] == NfsStat.NFS3ERR_STALE
    # Cross-directory moves of a directory fix nlink and "..".
    st, d1 = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"d1"), EMPTY_SATTR))
    st, d2 = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"d2"), EMPTY_SATTR))
    st, rn = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(workdir, b"d1"),
                                             DirOpArgs3(d2.obj, b"moved")))
    assert st == OK and rn.todir_wcc.after.nlink == 3
    st, up = c.nfs(Proc.LOOKUP, DirOpArgs3(d1.obj, b".."))
    assert up.obj_attributes.fileid == d2.obj_attributes.fileid
    # A directory cannot move into itself, nor replace a non-empty directory or a file.
    st, _ = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(workdir, b"d2"),
                                            DirOpArgs3(d1.obj, b"loop")))
    assert st == NfsStat.NFS3ERR_INVAL
    st, _ = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(d2.obj, b"moved"),
                                            DirOpArgs3(workdir, b"b")))
    assert st == NfsStat.NFS3ERR_NOTDIR
    st, _ = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(workdir, b"b"),
                                            DirOpArgs3(workdir, b"d2")))
    assert st == NfsStat.NFS3ERR_ISDIR
    create(c, d1.obj, b"keep")
    st, d3 = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(workdir, b"d3"), EMPTY_SATTR))
    st, _ = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(workdir, b"d3"),
                                            DirOpArgs3(d2.obj, b"moved")))
    assert st == NfsStat.NFS3ERR_NOTEMPTY
    # Renaming onto a hard link of itself is a no-op that succeeds.
    c.nfs(Proc.LINK, C.LinkArgs(lk.object, DirOpArgs3(workdir, b"b2")))
    st, _ = c.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(workdir, b"b"), DirOpArgs3(workdir, b"b2")))
    assert st == OK and c.nfs(Proc.LOOKUP, DirOpArgs3(workdir, b"b"))[0] == OK


def _readdir_all(c, d, count=4096):
    names, cookie, verf = [], 0, ZERO8
    while True:
        st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(d, cookie, verf, count))
        assert st == OK, st
        names += [e.name for e in r.entries]
        if r.eof:
            return names
        assert r.entries, "no progress without eof"
        cookie, verf = r.entries[-1].cookie, r.cookieverf


def test_readdir_cookies_and_limits(c, workdir):
    want = [b"entry-%03d-%s" % (i, b"x" * (i % 40)) for i in range(300)]
    for n in want:
        assert create(c, workdir, n)[0] == OK
    names = _readdir_all(c, workdir, count=1024)
    assert names[:2] == [b".", b".."] and sorted(names[2:]) == sorted(want)
    # Each reply honours count.
    st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(workdir, 0, ZERO8, 1024))
    assert st == OK and not r.eof
    assert len(encode(C.READDIR_RES_T, (st, r))) <= 1024
    # Removing entries between calls does not lose or repeat the others.
    cookie = r.entries[-1].cookie
    seen = [e.name for e in r.entries]
    for n in want[:50]:
        if n not in seen:
            c.nfs(Proc.REMOVE, DirOpArgs3(workdir, n))
    rest = []
    verf = r.cookieverf
    while True:
        st, r = c.nfs(Proc.READDIR, C.ReaddirArgs(workdir, cookie, verf, 1024))
        rest += [e.name for e in r.entries]
        if r.eof:
            break
        cookie = r.entries[-1].cookie
    assert not set(rest) & set(seen)
    assert set(seen[2:]) | set(rest) == {n for n in want if n in seen or n not in want[:50]}
    st, _ = c.nfs(Proc.READDIR, C.ReaddirArgs(workdir, 5, b"badverf!", 1024))
    assert st == NfsStat.NFS3ERR_BAD_COOKIE
    st, _ = c.nfs(Proc.READDIR, C.ReaddirArgs(workdir, 0, ZERO8, 10))
    assert st == NfsStat.NFS3ERR_TOOSMALL


def test_readdirplus(c, workdir):
    for i in range(50):
        st, res = create(c, workdir, b"p%02d" % i)
        write(c, res.obj, 0, b"x" * i)
    got, cookie, verf = {}, 0, ZERO8
    while True:
        st, r = c.nfs(Proc.READDIRPLUS, C.ReaddirplusArgs(workdir, cookie, verf, 512, 4096))
        assert st == OK
        assert len(encode(C.READDIRPLUS_RES_T, (st, r))) <= 4096
        for e in r.entries:
            got[e.name] = e
        if r.eof:
            break
        cookie, verf = r.entries[-1].cookie, r.cookieverf
    assert {b"p%02d" % i for i in range(50)} <= set(got)
    for i in range(50):
        e = got[b"p%02d" % i]
        assert e.name_attributes.size == i and e.name_attributes.fileid == e.fileid
        st, a = c.nfs(Proc.GETATTR, e.name_handle)
        assert st == OK and a.fileid == e.fileid


def test_readdirplus_replies_are_filled_whatever_the_name_lengths(c, workdir):
    """Entries are fetched for what should fit and then for the room left: short names
    (more entries per reply than the first fetch reckons) and long ones still give full
    replies, and a listing sees every name once, in cookie order."""
    names = [bytes([97 + i // 26, 97 + i % 26]) for i in range(400)]  # "aa".."pj": 2 bytes
    names += [b"long-name-%04d-" % i + b"x" * 40 for i in range(100)]
    for n in names:
        assert create(c, workdir, n)[0] == OK
    seen, cookie, verf, counts = [], 0, ZERO8, []
    while True:
        st, r = c.nfs(Proc.READDIRPLUS, C.ReaddirplusArgs(workdir, cookie, verf, 8192, 65536))
        assert st == OK
        dirbytes = sum(24 + len(e.name) + (-len(e.name) & 3) for e in r.entries)
        assert dirbytes <= 8192
        if not r.eof:  # no room left for even the next entry (at most 24 + 56 bytes)
            assert dirbytes > 8192 - 80
        counts.append(len(r.entries))
        seen += [e.name for e in r.entries]
        if r.eof:
            break
        cookie, verf = r.entries[-1].cookie, r.cookieverf
    assert seen[:2] == [b".", b".."] and sorted(seen[2:]) == sorted(names)
    assert len(set(seen)) == len(seen)
    assert counts[0] == 8192 // 28  # 2-byte names: 28 bytes each, more than one fetch


def test_fsstat_fsinfo_pathconf(c, root):
    st, fs = c.nfs(Proc.FSSTAT, root)
    assert st == OK and fs.tbytes >= fs.fbytes >= fs.abytes > 0 and fs.tfiles > fs.ffiles
    st, fi = c.nfs(Proc.FSINFO, root)
    assert st == OK and fi.rtmax == MAX_IO and fi.wtmax == MAX_IO and fi.rtpref <= fi.rtmax
    assert fi.maxfilesize == 2**63 - 1 and fi.properties & 0x1B == 0x1B
    assert fi.obj_attributes.type == FileType.DIR
    st, pc = c.nfs(Proc.PATHCONF, root)
    assert st == OK and pc.name_max == 255 and pc.no_trunc and pc.case_preserving
    assert not pc.case_insensitive and pc.chown_restricted


def test_bad_names(c, workdir):
    assert create(c, workdir, b"a/b")[0] == NfsStat.NFS3ERR_INVAL
    assert create(c, workdir, b"nul\0")[0] == NfsStat.NFS3ERR_INVAL
    assert create(c, workdir, b"n" * 256)[0] == NfsStat.NFS3ERR_NAMETOOLONG
    assert create(c, workdir, b"n" * 255)[0] == OK
    assert create(c, workdir, b"")[0] != OK
    assert create(c, workdir, b"..")[0] == NfsStat.NFS3ERR_EXIST
    assert create(c, workdir, b".")[0] == NfsStat.NFS3ERR_EXIST


def test_forged_and_stale_handles(c, root):
    bad = bytearray(root)
    bad[-1] ^= 1
    st, res = c.nfs(Proc.GETATTR, bytes(bad))
    assert st == NfsStat.NFS3ERR_BADHANDLE
    assert c.nfs(Proc.GETATTR, b"")[0] == NfsStat.NFS3ERR_BADHANDLE
    assert c.nfs(Proc.GETATTR, b"\xff" * 64)[0] == NfsStat.NFS3ERR_BADHANDLE
    st, w = c.nfs(Proc.WRITE, C.WriteArgs(bytes(bad), 0, 1, StableHow.UNSTABLE, b"x"))
    assert st == NfsStat.NFS3ERR_BADHANDLE and w.after is None


def test_mount_protocol(server, c):
    from dittofs.nfs.const import MOUNT_PROGRAM, MOUNT_V3, MountProc
    from dittofs.nfs.mount import DIRPATH_T, EXPORTS_T, MOUNTLIST_T
    st, _ = c.mount(b"/nope")
    assert st == MountStat.MNT3ERR_NOENT
    st, ok = c.mount(b"/export")
    assert st == MountStat.MNT3_OK
    exports = c.call(MOUNT_PROGRAM, MOUNT_V3, MountProc.EXPORT, VOID, None, EXPORTS_T)
    assert [e.dir for e in exports] == [b"/export"]
    mounts = c.call(MOUNT_PROGRAM, MOUNT_V3, MountProc.DUMP, VOID, None, MOUNTLIST_T)
    assert (b"127.0.0.1", b"/export") in [(m.hostname, m.directory) for m in mounts]
    c.call(MOUNT_PROGRAM, MOUNT_V3, MountProc.UMNT, DIRPATH_T, b"/export", VOID)
    mounts = c.call(MOUNT_PROGRAM, MOUNT_V3, MountProc.DUMP, VOID, None, MOUNTLIST_T)
    assert (b"127.0.0.1", b"/export") not in [(m.hostname, m.directory) for m in mounts]
    c.call(MOUNT_PROGRAM, MOUNT_V3, MountProc.UMNTALL, VOID, None, VOID)


def test_portmap(server, c):
    from dittofs.nfs.const import PMAP_PROGRAM, PMAP_V2, PmapProc
    from dittofs.nfs.portmap import MAPPING_T, PMAPLIST_T, Mapping
    from dittofs.rpc.xdr import BOOL, U32
    port = c.call(PMAP_PROGRAM, PMAP_V2, PmapProc.GETPORT, MAPPING_T,
                  Mapping(100005, 3, 6, 0), U32)
    assert port == server.port
    assert c.call(PMAP_PROGRAM, PMAP_V2, PmapProc.GETPORT, MAPPING_T,
                  Mapping(100003, 4, 6, 0), U32) == 0
    maps = c.call(PMAP_PROGRAM, PMAP_V2, PmapProc.DUMP, VOID, None, PMAPLIST_T)
    assert {(m.prog, m.vers, m.port) for m in maps} == {
        (100000, 2, server.port), (100003, 3, server.port), (100005, 3, server.port)}
    assert c.call(PMAP_PROGRAM, PMAP_V2, PmapProc.SET, MAPPING_T,
                  Mapping(999, 1, 6, 1234), BOOL) is False
