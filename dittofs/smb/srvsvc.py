"""Just enough connection-oriented DCE/RPC (C706 chapter 12) and NDR for the ``srvsvc``
pipe: BIND, and the NetrShareEnum (opnum 15) and NetrShareGetInfo (opnum 16) calls that
share listings make (MS-SRVS 3.1.4.8, 3.1.4.10).  Sans-IO: bytes of a PDU in, bytes out.
"""

from __future__ import annotations

import struct
import uuid
from typing import NamedTuple

PTYPE_REQUEST, PTYPE_RESPONSE, PTYPE_FAULT, PTYPE_BIND, PTYPE_BIND_ACK = 0, 2, 3, 11, 12
PTYPE_BIND_NAK = 13
PFC_FIRST_LAST = 0x03
_HDR = struct.Struct("<BBBB4sHHI")
SRVSVC = uuid.UUID("4b324fc8-1670-01d3-1278-5a47bf6ee188").bytes_le
NDR32 = uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860").bytes_le
NCA_OP_RNG_ERROR = 0x1C010002
NCA_UNSPEC_REJECT = 0x1C000009
ERROR_INVALID_LEVEL = 124
NERR_NET_NAME_NOT_FOUND = 2310
STYPE_DISKTREE = 0
STYPE_IPC_SPECIAL = 0x80000003


class RpcError(ValueError):
    """A PDU we cannot parse."""


class ShareInfo(NamedTuple):
    name: str
    type: int
    remark: str


class Ndr:
    """An NDR (transfer syntax 2.0, little endian) writer for the few types srvsvc needs."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ref = 0x20000

    def align(self, n: int) -> None:
        self.buf += bytes(-len(self.buf) & (n - 1))

    def u32(self, v: int) -> None:
        self.align(4)
        self.buf += struct.pack("<I", v)

    def ptr(self) -> None:
        self.ref += 4
        self.u32(self.ref)

    def wstring(self, s: str) -> None:
        raw = (s + "\0").encode("utf-16-le")
        n = len(raw) // 2
        self.u32(n)
        self.u32(0)
        self.u32(n)
        self.buf += raw


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.off = 0

    def u32(self) -> int:
        self.off += -self.off & 3
        if self.off + 4 > len(self.data):
            raise RpcError("stub truncated")
        v = struct.unpack_from("<I", self.data, self.off)[0]
        self.off += 4
        return v

    def wstring(self) -> str:
        self.u32()
        self.u32()
        n = self.u32()
        raw = self.data[self.off:self.off + 2 * n]
        if len(raw) != 2 * n:
            raise RpcError("string truncated")
        self.off += 2 * n
        return raw.decode("utf-16-le", "replace").rstrip("\0")


def _pdu(ptype: int, call_id: int, body: bytes) -> bytes:
    return _HDR.pack(5, 0, ptype, PFC_FIRST_LAST, b"\x10\x00\x00\x00", 16 + len(body), 0,
                     call_id) + body


def _share_info(w: Ndr, level: int, s: ShareInfo) -> None:
    w.ptr()
    if level == 1:
        w.u32(s.type)
        w.ptr()


def _share_strings(w: Ndr, level: int, s: ShareInfo) -> None:
    w.wstring(s.name)
    if level == 1:
        w.wstring(s.remark)


class SrvsvcPipe:
    """One open of ``\\PIPE\\srvsvc``: ``write`` a PDU, ``read`` the answer."""

    def __init__(self, shares: callable) -> None:
        self.shares = shares  # () -> list[ShareInfo]
        self.out = bytearray()
        self.bound = False

    def write(self, data: bytes) -> None:
        self.out += self.transact(data)

    def read(self, n: int) -> bytes:
        chunk = bytes(self.out[:n])
        del self.out[:n]
        return chunk

    def transact(self, data: bytes) -> bytes:
        if len(data) < 16:
            raise RpcError("PDU shorter than its header")
        vers, _, ptype, _, drep, frag, auth, call_id = _HDR.unpack_from(data)
        if vers != 5 or drep[0] & 0xF0 != 0x10 or frag > len(data) or frag < 16:
            raise RpcError("not a little-endian DCE/RPC 5 PDU")
        body = data[16:frag]
        if ptype == PTYPE_BIND:
            return self._bind(call_id, body)
        if ptype == PTYPE_REQUEST:
            if not self.bound:
                return _pdu(PTYPE_FAULT, call_id, struct.pack("<IHBBII", 0, 0, 0, 0,
                                                                  NCA_UNSPEC_REJECT, 0))
            return self._request(call_id, body)
        raise RpcError(f"PDU type {ptype} not handled")

    def _bind(self, call_id: int, body: bytes) -> bytes:
        if len(body) < 12:
            raise RpcError("BIND truncated")
        max_xmit, max_recv, _, n = struct.unpack_from("<HHIB", body)
        off = 12
        results = []
        for _ in range(n):
            if off + 24 > len(body):
                raise RpcError("BIND context truncated")
            _, ntrans = struct.unpack_from("<HB", body, off)
            abstract = body[off + 4:off + 20]
            off += 24
            accepted = None
            for i in range(ntrans):
                ts = body[off + 20 * i:off + 20 * i + 20]
                if ts[:16] == NDR32 and abstract == SRVSVC:
                    accepted = ts
            off += 20 * ntrans
            if accepted is not None and not self.bound:
                self.bound = True
                results.append(struct.pack("<HH", 0, 0) + accepted)
            else:
                # provider rejection: abstract syntax (1) or transfer syntaxes (2) not supported
                reason = 2 if abstract == SRVSVC else 1
                results.append(struct.pack("<HH", 2, reason) + bytes(20))
        port = b"\\PIPE\\srvsvc\x00"
        head = struct.pack("<HHIH", min(max_xmit, 4280), min(max_recv, 4280), 0x12345,
                           len(port)) + port
        head += bytes(-(len(head) + 16) & 3)
        body_out = head + struct.pack("<B3x", len(results)) + b"".join(results)
        return _pdu(PTYPE_BIND_ACK, call_id, body_out)

    def _request(self, call_id: int, body: bytes) -> bytes:
        if len(body) < 8:
            raise RpcError("REQUEST truncated")
        _, ctx, opnum = struct.unpack_from("<IHH", body)
        stub = body[8:]
        if opnum == 15:
            out = self._share_enum(stub)
        elif opnum == 16:
            out = self._share_get_info(stub)
        else:
            return _pdu(PTYPE_FAULT, call_id, struct.pack("<IHBBII", 0, ctx, 0, 0,
                                                          NCA_OP_RNG_ERROR, 0))
        return _pdu(PTYPE_RESPONSE, call_id, struct.pack("<IHBB", len(out), ctx, 0, 0) + out)

    def _share_enum(self, stub: bytes) -> bytes:
        r = Reader(stub)
        if r.u32():
            r.wstring()  # ServerName
        level = r.u32()
        w = Ndr()
        shares = self.shares()
        if level not in (0, 1):
            w.u32(level)
            w.u32(level)
            w.u32(0)
            w.u32(0)
            w.u32(0)
            w.u32(ERROR_INVALID_LEVEL)
            return bytes(w.buf)
        w.u32(level)
        w.u32(level)
        w.ptr()  # container
        w.u32(len(shares))
        w.ptr()  # array
        w.u32(len(shares))
        for s in shares:
            _share_info(w, level, s)
        for s in shares:
            _share_strings(w, level, s)
        w.u32(len(shares))  # TotalEntries
        w.ptr()  # ResumeHandle
        w.u32(0)
        w.u32(0)  # WERROR
        return bytes(w.buf)

    def _share_get_info(self, stub: bytes) -> bytes:
        r = Reader(stub)
        if r.u32():
            r.wstring()
        name = r.wstring()
        level = r.u32()
        w = Ndr()
        found = [s for s in self.shares() if s.name.lower() == name.lower()]
        if level not in (0, 1) or not found:
            w.u32(level)
            w.u32(0)
            w.u32(ERROR_INVALID_LEVEL if found else NERR_NET_NAME_NOT_FOUND)
            return bytes(w.buf)
        w.u32(level)
        w.ptr()
        _share_info(w, level, found[0])
        _share_strings(w, level, found[0])
        w.u32(0)
        return bytes(w.buf)
