"""Malformed input, access control and pipelining against the real server process."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from dittofs.nfs import codec as C
from dittofs.nfs.const import MountStat, NfsStat, Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from dittofs.rpc.message import AcceptStat, AuthStat, RejectStat, ReplyStat, encode_call
from dittofs.rpc.record import frame_bytes
from dittofs.rpc.xdr import Packer
from tests.integration.conftest import stop_and_check
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv():
    config = {"shares": [
        {"name": "/export"},
        {"name": "/ro", "read_only": True},
        {"name": "/elsewhere", "allowed_clients": ["10.0.0.0/8"]},
        {"name": "/open", "root_squash": False, "root": {"mode": 0o755}},
    ]}
    s = ServerProcess(config).start()
    yield s
    stop_and_check(s)


def healthy(port: int) -> None:
    """Another client is still served normally."""
    with NfsClient(port) as c:
        st, ok = c.mount(b"/export")
        assert st == MountStat.MNT3_OK
        assert c.nfs(Proc.GETATTR, ok.fhandle)[0] == NfsStat.NFS3_OK


def raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_truncated_record_then_close(srv):
    s = raw(srv.port)
    s.sendall(struct.pack(">I", 0x80000000 | 100) + b"\0" * 50)
    s.close()
    healthy(srv.port)


def test_huge_record_marker_closes_connection(srv):
    s = raw(srv.port)
    s.sendall(struct.pack(">I", 0x7FFFFFFF) + b"\0" * 64)
    assert closed_by_server(s)
    s = raw(srv.port)
    s.sendall(struct.pack(">I", 0xFFFFFFFF))
    assert closed_by_server(s)
    healthy(srv.port)


def test_unknown_program_version_procedure(srv):
    with NfsClient(srv.port) as c:
        r, _ = c.call_raw(200000, 1, 0)
        assert r.reply_stat == ReplyStat.MSG_ACCEPTED and r.accept_stat == AcceptStat.PROG_UNAVAIL
        r, _ = c.call_raw(100003, 4, 0)
        assert r.accept_stat == AcceptStat.PROG_MISMATCH and r.detail == (3, 3)
        r, _ = c.call_raw(100005, 1, 0)
        assert r.accept_stat == AcceptStat.PROG_MISMATCH and r.detail == (3, 3)
        r, _ = c.call_raw(100003, 3, 22)
        assert r.accept_stat == AcceptStat.PROC_UNAVAIL
        r, _ = c.call_raw(100000, 2, 5)  # CALLIT is not offered
        assert r.accept_stat == AcceptStat.PROC_UNAVAIL
    healthy(srv.port)


def test_garbage_arguments(srv):
    with NfsClient(srv.port) as c:
        r, _ = c.call_raw(100003, 3, Proc.GETATTR, b"\x00\x00")
        assert r.accept_stat == AcceptStat.GARBAGE_ARGS
        r, _ = c.call_raw(100003, 3, Proc.GETATTR, struct.pack(">I", 1000) + b"x" * 8)
        assert r.accept_stat == AcceptStat.GARBAGE_ARGS  # handle longer than 64 bytes
        r, _ = c.call_raw(100003, 3, Proc.WRITE, struct.pack(">I", 4) + b"abcd" + b"\xff" * 7)
        assert r.accept_stat == AcceptStat.GARBAGE_ARGS
        r, _ = c.call_raw(100005, 3, 1, struct.pack(">I", 5000))  # dirpath over 1024
        assert r.accept_stat == AcceptStat.GARBAGE_ARGS
        # The connection keeps working after garbage.
        st, _ = c.mount(b"/export")
        assert st == MountStat.MNT3_OK
    healthy(srv.port)


def _call_with(cred_flavor: int, cred_body: bytes, rpcvers: int = 2) -> bytes:
    p = Packer()
    for v in (0xABCD, 0, rpcvers, 100003, 3, 0, cred_flavor, len(cred_body)):
        p.u32(v)
    p.raw(cred_body + b"\0" * (-len(cred_body) & 3))
    p.raw(b"\0" * 8)
    return frame_bytes(p.getvalue())


def test_bad_credentials(srv):
    with NfsClient(srv.port) as c:
        for flavor, body in ((1, b"\0\0\0\1"), (6, b"\0" * 8), (1, b"\0" * 420)):
            c.send_raw(_call_with(flavor, body))
            u_rec = c.recv_record()
            xid, mtype, stat, rstat, astat = struct.unpack(">IIIII", u_rec[:20])
            assert (xid, mtype, stat, rstat) == (0xABCD, 1, ReplyStat.MSG_DENIED,
                                                 RejectStat.AUTH_ERROR)
            assert astat == AuthStat.AUTH_BADCRED
        c.send_raw(_call_with(0, b"", rpcvers=3))
        rec = c.recv_record()
        assert struct.unpack(">IIIIII", rec) == (0xABCD, 1, 1, RejectStat.RPC_MISMATCH, 2, 2)
    healthy(srv.port)


def test_not_a_call_is_dropped_and_connection_survives(srv):
    with NfsClient(srv.port) as c:
        c.send_raw(frame_bytes(struct.pack(">II", 7, 1) + b"\0" * 40))  # a REPLY
        c.send_raw(frame_bytes(b"\0\0"))  # too short for anything
        st, _ = c.mount(b"/export")
        assert st == MountStat.MNT3_OK


def test_random_garbage_from_many_connections(srv):
    rng = __import__("random").Random(1234)
    for _ in range(30):
        s = raw(srv.port)
        try:
            for _ in range(5):
                n = rng.randrange(1, 300)
                if rng.random() < 0.5:
                    blob = struct.pack(">I", 0x80000000 | n) + os.urandom(n)
                else:
                    blob = os.urandom(n)
                s.sendall(blob)
        except OSError:
            pass
        s.close()
    healthy(srv.port)


def test_pipelined_calls_are_answered_by_xid(srv):
    with NfsClient(srv.port) as c:
        st, ok = c.mount(b"/export")
        p = Packer()
        C.GETATTR_ARGS_T.pack(p, ok.fhandle)
        args = p.getvalue()
        xids = list(range(0x5000, 0x5000 + 200))
        c.send_raw(b"".join(frame_bytes(encode_call(x, 100003, 3, Proc.GETATTR, c.cred) + args)
                            for x in xids))
        got = []
        for _ in xids:
            rec = c.recv_record()
            got.append(struct.unpack(">I", rec[:4])[0])
            assert struct.unpack(">I", rec[20:24])[0] == AcceptStat.SUCCESS
        assert sorted(got) == xids


def test_multi_fragment_record(srv):
    with NfsClient(srv.port) as c:
        body = encode_call(0x77, 100005, 3, 1, c.cred) + b"\0\0\0\x07/export\0"
        frags = [body[:10], body[10:11], body[11:]]
        wire = b"".join(
            struct.pack(">I", (0x80000000 if i == 2 else 0) | len(f)) + f
            for i, f in enumerate(frags))
        c.send_raw(wire)
        rec = c.recv_record()
        xid, _, _, _, _, astat, mstat = struct.unpack(">IIIIIII", rec[:28])
        assert xid == 0x77 and astat == 0 and mstat == MountStat.MNT3_OK


def test_read_only_share(srv):
    with NfsClient(srv.port, uid=1000, gid=1000) as c:
        st, ok = c.mount(b"/ro")
        assert st == MountStat.MNT3_OK
        st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(ok.fhandle, b"f"),
                                                  (0, EMPTY_SATTR)))
        assert st == NfsStat.NFS3ERR_ROFS and res.after is not None
        st, res = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(ok.fhandle, b"d"), EMPTY_SATTR))
        assert st == NfsStat.NFS3ERR_ROFS
        st, ac = c.nfs(Proc.ACCESS, C.AccessArgs(ok.fhandle, 0x3F))
        assert st == NfsStat.NFS3_OK and not ac.access & (0x04 | 0x08 | 0x10)
        assert c.nfs(Proc.GETATTR, ok.fhandle)[0] == NfsStat.NFS3_OK


def test_client_network_not_allowed(srv):
    with NfsClient(srv.port) as c:
        st, _ = c.mount(b"/elsewhere")
        assert st == MountStat.MNT3ERR_ACCES
        assert c.mount(b"/export")[0] == MountStat.MNT3_OK


def test_root_not_squashed_when_disabled(srv):
    with NfsClient(srv.port, uid=0, gid=0) as c:
        st, ok = c.mount(b"/open")
        st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(ok.fhandle, b"rootfile"),
                                                  (0, EMPTY_SATTR)))
        assert st == NfsStat.NFS3_OK and res.obj_attributes.uid == 0
    with NfsClient(srv.port, uid=1000, gid=1000) as c:
        st, ok = c.mount(b"/open")
        st, _ = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(ok.fhandle, b"userfile"),
                                                (0, EMPTY_SATTR)))
        assert st == NfsStat.NFS3ERR_ACCES  # root-owned 0755 share root


def test_write_larger_than_wtmax_is_refused(srv):
    with NfsClient(srv.port) as c:
        st, ok = c.mount(b"/export")
        st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(ok.fhandle, b"w"), (0, EMPTY_SATTR)))
        data = b"z" * (1024 * 1024 + 1)
        st, _ = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, 0, len(data), StableHow.UNSTABLE, data))
        assert st == NfsStat.NFS3ERR_INVAL
        st, _ = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, 0, 10, StableHow.UNSTABLE, b"short"))
        assert st == NfsStat.NFS3ERR_INVAL
