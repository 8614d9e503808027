"""A blocking ONC-RPC/NFSv3 client built on dittofs's own codec, for tests."""

from __future__ import annotations

import itertools
import socket
import struct
from typing import Any

from dittofs.nfs import codec as C
from dittofs.nfs.const import MOUNT_PROGRAM, MOUNT_V3, NFS_PROGRAM, NFS_V3, MountProc, Proc
from dittofs.nfs.mount import DIRPATH_T, MOUNTRES_T
from dittofs.rpc.message import AcceptStat, AuthUnix, encode_call, parse_reply
from dittofs.rpc.record import frame_bytes
from dittofs.rpc.xdr import Packer, Unpacker, XdrType

_xids = itertools.count(0x1000)


class RpcFailure(Exception):
    def __init__(self, reply: Any) -> None:
        super().__init__(reply)
        self.reply = reply


class RpcClient:
    """One TCP connection; ``call`` sends a call and waits for the matching reply."""

    def __init__(self, port: int, host: str = "127.0.0.1", uid: int = 0, gid: int = 0,
                 gids: tuple[int, ...] = (), timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.cred: AuthUnix | None = AuthUnix(0, b"testclient", uid, gid, gids)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RpcClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_record(self) -> bytes:
        """Read one whole record (all fragments)."""
        out = []
        while True:
            mark = struct.unpack(">I", self._exact(4))[0]
            out.append(self._exact(mark & 0x7FFFFFFF))
            if mark & 0x80000000:
                return b"".join(out)

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by server")
            buf += chunk
        return bytes(buf)

    def call_raw(self, prog: int, vers: int, proc: int, body: bytes = b"",
                 xid: int | None = None) -> tuple[Any, Unpacker]:
        xid = next(_xids) if xid is None else xid
        self.send_raw(frame_bytes(encode_call(xid, prog, vers, proc, self.cred) + body))
        rec = self.recv_record()
        u = Unpacker(rec)
        reply = parse_reply(u)
        assert reply.xid == xid, (hex(reply.xid), hex(xid))
        return reply, u

    def call(self, prog: int, vers: int, proc: int, args_t: XdrType, args: Any,
             res_t: XdrType) -> Any:
        p = Packer()
        args_t.pack(p, args)
        reply, u = self.call_raw(prog, vers, proc, p.getvalue())
        if reply.accept_stat != AcceptStat.SUCCESS:
            raise RpcFailure(reply)
        result = res_t.unpack(u)
        u.done()
        return result


class NfsClient(RpcClient):
    """NFSv3 and MOUNT calls by procedure name."""

    def mount(self, path: bytes) -> Any:
        return self.call(MOUNT_PROGRAM, MOUNT_V3, MountProc.MNT, DIRPATH_T, path, MOUNTRES_T)

    def nfs(self, proc: Proc, args: Any) -> Any:
        args_t, res_t = C.SIGNATURES[proc]
        return self.call(NFS_PROGRAM, NFS_V3, proc, args_t, args, res_t)
