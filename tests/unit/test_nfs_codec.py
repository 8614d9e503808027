"""NFSv3 arguments and results (RFC 1813 section 3.3): byte-exact vectors and round trips."""

from __future__ import annotations

import pytest

from dittofs.metadata.types import FileType
from dittofs.nfs import codec as C
from dittofs.nfs.const import CreateMode, NfsStat, Proc, StableHow, TimeHow
from dittofs.nfs.types import (
    EMPTY_SATTR,
    DirOpArgs3,
    Fattr3,
    NfsTime3,
    Sattr3,
    SpecData3,
    WccAttr3,
    WccData,
)
from dittofs.rpc.xdr import XdrError, decode, encode
from tests.support.vectors import hexv

FH = bytes(range(1, 22))  # a 21-byte handle; opaque to the codec
FH_WIRE = "00000015 0102030405060708090a0b0c0d0e0f101112131415 000000"

ATTR = Fattr3(1, 0o644, 1, 1000, 100, 4096, 4096, 0, 0, 0xDEADBEEF, 42,
              0x5F5E1000, 1, 0x5F5E1000, 2, 0x5F5E1000, 3)
ATTR_WIRE = """
    00000001            type NF3REG
    000001a4            mode 0644
    00000001            nlink
    000003e8            uid 1000
    00000064            gid 100
    0000000000001000    size 4096
    0000000000001000    used
    00000000 00000000   rdev
    00000000deadbeef    fsid
    000000000000002a    fileid 42
    5f5e1000 00000001   atime
    5f5e1000 00000002   mtime
    5f5e1000 00000003   ctime
"""


def test_fattr3_is_84_bytes_and_exact():
    from dittofs.nfs.types import FATTR3_T
    wire = hexv(ATTR_WIRE)
    assert len(wire) == 84
    assert encode(FATTR3_T, ATTR) == wire
    assert decode(FATTR3_T, wire) == ATTR


VECTORS = [
    # (type, value, annotated wire)
    (C.GETATTR_ARGS_T, FH, FH_WIRE),
    (C.GETATTR_RES_T, (NfsStat.NFS3_OK, ATTR), "00000000  NFS3_OK" + ATTR_WIRE),
    (C.GETATTR_RES_T, (NfsStat.NFS3ERR_STALE, None), "00000046  NFS3ERR_STALE"),
    (C.SETATTR_ARGS_T,
     C.SetattrArgs(FH, Sattr3(0o755, None, None, 0, (TimeHow.SET_TO_SERVER_TIME, None),
                              (TimeHow.SET_TO_CLIENT_TIME, NfsTime3(0x5F5E1000, 0))),
                   NfsTime3(0x5F5E1000, 7)), FH_WIRE + """
        00000001 000001ed   mode set 0755
        00000000            uid unchanged
        00000000            gid unchanged
        00000001 0000000000000000  size set to 0
        00000001            atime SET_TO_SERVER_TIME
        00000002 5f5e1000 00000000  mtime SET_TO_CLIENT_TIME
        00000001 5f5e1000 00000007  guard ctime
    """),
    (C.LOOKUP_RES_T, (NfsStat.NFS3ERR_NOENT, ATTR),
     "00000002  NOENT\n 00000001  dir attributes follow" + ATTR_WIRE),
    (C.READ_ARGS_T, C.ReadArgs(FH, 0x10000, 0x1000),
     FH_WIRE + "\n 0000000000010000 offset\n 00001000 count"),
    (C.READ_RES_T, (NfsStat.NFS3_OK, C.ReadOk(None, 3, True, b"abc")), """
        00000000            NFS3_OK
        00000000            no attributes
        00000003            count
        00000001            eof
        00000003 61626300   data "abc" and padding
    """),
    (C.WRITE_RES_T, (NfsStat.NFS3_OK, C.WriteOk(
        WccData(WccAttr3(0, 1, 2, 3, 4), None), 3, StableHow.FILE_SYNC, b"VERIFIER")), """
        00000000            NFS3_OK
        00000001            pre-op attributes follow
        0000000000000000    size
        00000001 00000002   mtime
        00000003 00000004   ctime
        00000000            no post-op attributes
        00000003            count
        00000002            committed FILE_SYNC
        5645524946494552    verifier
    """),
    (C.CREATE_ARGS_T, C.CreateArgs(DirOpArgs3(FH, b"f"), (CreateMode.EXCLUSIVE, b"\x01" * 8)),
     FH_WIRE + """
        00000001 66000000   name "f"
        00000002            EXCLUSIVE
        0101010101010101    createverf3
    """),
    (C.CREATE_ARGS_T, C.CreateArgs(DirOpArgs3(FH, b"g"), (CreateMode.GUARDED, EMPTY_SATTR)),
     FH_WIRE + """
        00000001 67000000   name "g"
        00000001            GUARDED
        00000000 00000000 00000000 00000000 nothing set
        00000000 00000000   atime and mtime DONT_CHANGE
    """),
    (C.READDIR_RES_T, (NfsStat.NFS3_OK, C.ReaddirOk(None, b"cookieve", [
        C.Entry3(2, b".", 1), C.Entry3(7, b"abcde", 3)], True)), """
        00000000            NFS3_OK
        00000000            no dir attributes
        636f6f6b69657665    cookieverf
        00000001            an entry follows
        0000000000000002    fileid
        00000001 2e000000   name "."
        0000000000000001    cookie
        00000001            an entry follows
        0000000000000007    fileid
        00000005 6162636465000000  name "abcde"
        0000000000000003    cookie
        00000000            no more entries
        00000001            eof
    """),
    (C.COMMIT_ARGS_T, C.CommitArgs(FH, 0, 0), FH_WIRE + "\n 0000000000000000\n 00000000"),
    (C.FSINFO_RES_T, (NfsStat.NFS3_OK, C.FsinfoOk(None, 1 << 20, 1 << 20, 4096, 1 << 20,
                                                  1 << 20, 4096, 65536, 2**63 - 1,
                                                  NfsTime3(0, 1), 0x1B)), """
        00000000            NFS3_OK
        00000000            no attributes
        00100000 00100000 00001000   rtmax rtpref rtmult
        00100000 00100000 00001000   wtmax wtpref wtmult
        00010000            dtpref
        7fffffffffffffff    maxfilesize
        00000000 00000001   time_delta 1 ns
        0000001b            properties LINK SYMLINK HOMOGENEOUS CANSETTIME
    """),
]


@pytest.mark.parametrize("t,value,wire", VECTORS)
def test_vectors(t, value, wire):
    raw = hexv(wire)
    assert encode(t, value) == raw
    assert decode(t, raw) == value


def test_write_args_keep_data_as_a_view():
    raw = hexv(FH_WIRE + """
        0000000000000000    offset
        00000003            count
        00000002            FILE_SYNC
        00000003 78797a00   data "xyz"
    """)
    a = decode(C.WRITE_ARGS_T, raw)
    assert a.file == FH and a.count == 3 and a.stable == StableHow.FILE_SYNC
    assert isinstance(a.data, memoryview) and a.data.tobytes() == b"xyz"


def test_invalid_enums_are_garbage():
    with pytest.raises(XdrError):
        decode(C.WRITE_ARGS_T, hexv(FH_WIRE + "\n 0000000000000000 00000000 00000003 00000000"))
    with pytest.raises(XdrError):
        decode(C.CREATE_ARGS_T, hexv(FH_WIRE + "\n 00000001 66000000 00000003"))


SATTR = Sattr3(0o600, 1, 2, 3, (TimeHow.DONT_CHANGE, None),
               (TimeHow.SET_TO_CLIENT_TIME, NfsTime3(4, 5)))
DIROP = DirOpArgs3(FH, b"name")
WCC = WccData(WccAttr3(1, 2, 3, 4, 5), ATTR)
SAMPLES = {
    Proc.NULL: (None, None),
    Proc.GETATTR: (FH, (NfsStat.NFS3_OK, ATTR)),
    Proc.SETATTR: (C.SetattrArgs(FH, SATTR, None), (NfsStat.NFS3ERR_PERM, WCC)),
    Proc.LOOKUP: (DIROP, (NfsStat.NFS3_OK, C.LookupOk(FH, ATTR, None))),
    Proc.ACCESS: (C.AccessArgs(FH, 0x3F), (NfsStat.NFS3_OK, C.AccessOk(ATTR, 0x21))),
    Proc.READLINK: (FH, (NfsStat.NFS3_OK, C.ReadlinkOk(None, b"../x"))),
    Proc.READ: (C.ReadArgs(FH, 5, 6), (NfsStat.NFS3ERR_IO, ATTR)),
    Proc.WRITE: (C.WriteArgs(FH, 1, 2, StableHow.UNSTABLE, b"ab"),
                 (NfsStat.NFS3ERR_ROFS, WCC)),
    Proc.CREATE: (C.CreateArgs(DIROP, (CreateMode.UNCHECKED, SATTR)),
                  (NfsStat.NFS3_OK, C.CreateOk(FH, ATTR, WCC))),
    Proc.MKDIR: (C.MkdirArgs(DIROP, SATTR), (NfsStat.NFS3_OK, C.CreateOk(None, None, WCC))),
    Proc.SYMLINK: (C.SymlinkArgs(DIROP, SATTR, b"/target"), (NfsStat.NFS3ERR_EXIST, WCC)),
    Proc.MKNOD: (C.MknodArgs(DIROP, (FileType.CHR, C.DeviceData(SATTR, SpecData3(1, 3)))),
                 (NfsStat.NFS3_OK, C.CreateOk(FH, ATTR, WCC))),
    Proc.REMOVE: (DIROP, (NfsStat.NFS3_OK, WCC)),
    Proc.RMDIR: (DIROP, (NfsStat.NFS3ERR_NOTEMPTY, WCC)),
    Proc.RENAME: (C.RenameArgs(DIROP, DirOpArgs3(FH, b"other")),
                  (NfsStat.NFS3_OK, C.RenameWcc(WCC, WCC))),
    Proc.LINK: (C.LinkArgs(FH, DIROP), (NfsStat.NFS3_OK, C.LinkRes(ATTR, WCC))),
    Proc.READDIR: (C.ReaddirArgs(FH, 3, b"12345678", 4096),
                   (NfsStat.NFS3ERR_BAD_COOKIE, None)),
    Proc.READDIRPLUS: (C.ReaddirplusArgs(FH, 0, bytes(8), 512, 8192), (
        NfsStat.NFS3_OK, C.ReaddirplusOk(ATTR, bytes(8), [
            C.EntryPlus3(9, b"a", 3, ATTR, FH), C.EntryPlus3(10, b"b", 4, None, None)], False))),
    Proc.FSSTAT: (FH, (NfsStat.NFS3_OK, C.FsstatOk(ATTR, 10, 9, 8, 7, 6, 5, 0))),
    Proc.FSINFO: (FH, (NfsStat.NFS3ERR_STALE, None)),
    Proc.PATHCONF: (FH, (NfsStat.NFS3_OK, C.PathconfOk(ATTR, 65000, 255, True, True, False,
                                                       True))),
    Proc.COMMIT: (C.CommitArgs(FH, 0, 0), (NfsStat.NFS3_OK, C.CommitOk(WCC, b"verifier"))),
}


def _normal(v):
    """Decoded values hold memoryviews and UnionValues; compare them as plain data."""
    if isinstance(v, memoryview):
        return v.tobytes()
    if isinstance(v, (tuple, list)):
        return tuple(_normal(x) for x in v)
    return v


@pytest.mark.parametrize("proc", list(Proc))
def test_every_procedure_round_trips(proc):
    args_t, res_t = C.SIGNATURES[proc]
    args, res = SAMPLES[proc]
    assert _normal(decode(args_t, encode(args_t, args))) == _normal(args)
    assert _normal(decode(res_t, encode(res_t, res))) == _normal(res)


def test_readdirplus_entries_are_packed_exactly():
    entries = [C.EntryPlus3(9, b"a", 3, ATTR, FH), C.EntryPlus3(10, b"name5", 4, None, None)]
    wire = hexv(f"""
        00000001 0000000000000009 00000001 61000000   entry: fileid 9, name "a"
        0000000000000003                              cookie 3
        00000001 {ATTR_WIRE}                          attributes follow
        00000001 {FH_WIRE}                            handle follows
        00000001 000000000000000a 00000005 6e616d6535 000000   fileid 10, "name5"
        0000000000000004 00000000 00000000            cookie 4, no attributes, no handle
        00000000                                      end of list
    """)
    assert encode(C.EntryPlusList(), entries) == wire
    assert decode(C.EntryPlusList(), wire) == entries


@pytest.mark.parametrize("seed", range(5))
def test_readdirplus_fast_packing_matches_the_generic_types(seed):
    import random

    from dittofs.rpc.xdr import LinkedList
    rng = random.Random(seed)
    entries = [C.EntryPlus3(rng.getrandbits(64), rng.randbytes(rng.randrange(0, 300)),
                            rng.getrandbits(64),
                            ATTR._replace(fileid=i, size=rng.getrandbits(64))
                            if rng.random() < 0.7 else None,
                            rng.randbytes(rng.randrange(0, 65)) if rng.random() < 0.7 else None)
               for i in range(rng.randrange(0, 60))]
    assert encode(C.EntryPlusList(), entries) == encode(LinkedList(C.ENTRYPLUS3_T), entries)


@pytest.mark.parametrize("bad", [
    C.EntryPlus3(1, b"x" * 4097, 1, None, None),    # name longer than filename3 allows
    C.EntryPlus3(1, b"x", 1, None, bytes(65)),      # handle longer than NFS3_FHSIZE
    C.EntryPlus3(1 << 64, b"x", 1, None, None),     # fileid out of uint64 range
    C.EntryPlus3(1, b"x", 1, ATTR._replace(mode=-1), None),
])
def test_readdirplus_fast_packing_refuses_what_the_generic_types_refuse(bad):
    with pytest.raises(XdrError):
        encode(C.EntryPlusList(), [bad])
