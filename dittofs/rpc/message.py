"""ONC-RPC v2 messages (RFC 5531 sections 8-9) and the AUTH_NULL / AUTH_UNIX flavors.

``parse_call`` reads a call header and leaves the cursor at the procedure
arguments.  The ``*_reply`` functions build reply headers as bytes.
"""

from __future__ import annotations

import enum
import functools
import struct
from typing import NamedTuple

from dittofs.rpc.xdr import Packer, Unpacker, XdrError

RPC_VERSION = 2
MAX_AUTH_BYTES = 400


class MsgType(enum.IntEnum):
    CALL = 0
    REPLY = 1


class ReplyStat(enum.IntEnum):
    MSG_ACCEPTED = 0
    MSG_DENIED = 1


class AcceptStat(enum.IntEnum):
    SUCCESS = 0
    PROG_UNAVAIL = 1
    PROG_MISMATCH = 2
    PROC_UNAVAIL = 3
    GARBAGE_ARGS = 4
    SYSTEM_ERR = 5


class RejectStat(enum.IntEnum):
    RPC_MISMATCH = 0
    AUTH_ERROR = 1


class AuthStat(enum.IntEnum):
    AUTH_OK = 0
    AUTH_BADCRED = 1
    AUTH_REJECTEDCRED = 2
    AUTH_BADVERF = 3
    AUTH_REJECTEDVERF = 4
    AUTH_TOOWEAK = 5
    AUTH_INVALIDRESP = 6
    AUTH_FAILED = 7


class AuthFlavor(enum.IntEnum):
    AUTH_NONE = 0
    AUTH_SYS = 1  # a.k.a. AUTH_UNIX
    AUTH_SHORT = 2
    AUTH_DH = 3
    RPCSEC_GSS = 6


class AuthUnix(NamedTuple):
    """authsys_parms (RFC 5531 appendix A)."""

    stamp: int
    machinename: bytes
    uid: int
    gid: int
    gids: tuple[int, ...]


class RpcCall(NamedTuple):
    xid: int
    prog: int
    vers: int
    proc: int
    cred_flavor: int
    cred: AuthUnix | None
    verf_flavor: int


class RpcDenied(Exception):
    """The call header is well formed enough to answer, but must be refused."""

    def __init__(self, xid: int, reply: bytes) -> None:
        super().__init__(xid)
        self.xid = xid
        self.reply = reply


_U32 = struct.Struct(">I")
_HDR = struct.Struct(">IIIIII")
_ACCEPTED_NULL = struct.Struct(">IIIIII")  # xid, REPLY, ACCEPTED, verf flavor, verf len, stat
_PAIR = struct.Struct(">II")
# Plain ints for the per-call comparisons (IntEnum members cost an attribute lookup).
_CALL, _REPLY, _ACCEPTED = int(MsgType.CALL), int(MsgType.REPLY), int(ReplyStat.MSG_ACCEPTED)
_AUTH_NONE, _AUTH_SYS = int(AuthFlavor.AUTH_NONE), int(AuthFlavor.AUTH_SYS)


def parse_auth_unix(body: bytes | memoryview) -> AuthUnix:
    """Decode an authsys_parms body; raise XdrError if it is malformed."""
    u = Unpacker(body)
    stamp = u.u32()
    n = u.u32()
    if n > 255:
        raise XdrError("machinename longer than 255")
    name = u.take(n).tobytes()
    u.take(-n & 3)
    uid = u.u32()
    gid = u.u32()
    ngids = u.u32()
    if ngids > 16:
        raise XdrError("more than 16 supplementary gids")
    gids = tuple(u.u32() for _ in range(ngids))
    u.done()
    return AuthUnix(stamp, name, uid, gid, gids)


def encode_auth_unix(cred: AuthUnix) -> bytes:
    p = Packer()
    p.u32(cred.stamp)
    n = len(cred.machinename)
    p.u32(n)
    p.raw(cred.machinename + b"\0" * (-n & 3))
    p.u32(cred.uid)
    p.u32(cred.gid)
    p.u32(len(cred.gids))
    for g in cred.gids:
        p.u32(g)
    return p.getvalue()


#: AUTH_SYS credentials decoded by their wire bytes: a client sends the same few over and
#: over, so most calls skip the decode (a malformed one raises, and is not remembered).
_auth_unix = functools.lru_cache(maxsize=4096)(parse_auth_unix)


def parse_call(u: Unpacker) -> RpcCall:
    """Decode a call header, leaving ``u`` at the arguments.

    Raises XdrError when the message cannot be answered at all (not a call, or
    too short to hold a header) and RpcDenied when it must be refused.
    """
    data, pos, end = u.data, u.pos, u.end
    if end - pos < 24:
        raise XdrError("record too short for an RPC call header")
    xid, mtype, rpcvers, prog, vers, proc = _HDR.unpack_from(data, pos)
    if mtype != _CALL:
        raise XdrError(f"message type {mtype} is not CALL")
    if rpcvers != RPC_VERSION:
        raise RpcDenied(xid, rpc_mismatch_reply(xid))
    # opaque_auth cred, opaque_auth verf: each flavor(4) | length(4) | body, padded.
    pos += 24
    if end - pos < 8:
        raise RpcDenied(xid, auth_error_reply(xid, AuthStat.AUTH_BADCRED))
    cred_flavor, n = _PAIR.unpack_from(data, pos)
    cred_at = pos + 8
    pos = cred_at + n + (-n & 3)
    if n > MAX_AUTH_BYTES or end - pos < 8:
        raise RpcDenied(xid, auth_error_reply(xid, AuthStat.AUTH_BADCRED))
    verf_flavor, vn = _PAIR.unpack_from(data, pos)
    pos += 8 + vn + (-vn & 3)
    if vn > MAX_AUTH_BYTES or pos > end:
        raise RpcDenied(xid, auth_error_reply(xid, AuthStat.AUTH_BADCRED))
    u.pos = pos
    cred: AuthUnix | None = None
    if cred_flavor == _AUTH_SYS:
        try:
            cred = _auth_unix(bytes(data[cred_at:cred_at + n]))
        except XdrError:
            raise RpcDenied(xid, auth_error_reply(xid, AuthStat.AUTH_BADCRED)) from None
    elif cred_flavor != _AUTH_NONE:
        raise RpcDenied(xid, auth_error_reply(xid, AuthStat.AUTH_BADCRED))
    if verf_flavor != _AUTH_NONE:
        raise RpcDenied(xid, auth_error_reply(xid, AuthStat.AUTH_BADVERF))
    return RpcCall(xid, prog, vers, proc, cred_flavor, cred, verf_flavor)


def encode_call(xid: int, prog: int, vers: int, proc: int, cred: AuthUnix | None = None) -> bytes:
    """Build a call header (used by our test client and benchmarks)."""
    p = Packer()
    p.raw(_HDR.pack(xid, MsgType.CALL, RPC_VERSION, prog, vers, proc))
    if cred is None:
        p.raw(b"\0" * 8)
    else:
        body = encode_auth_unix(cred)
        p.u32(AuthFlavor.AUTH_SYS)
        p.u32(len(body))
        p.raw(body)
    p.raw(b"\0" * 8)  # AUTH_NONE verifier
    return p.getvalue()


def accepted_reply(xid: int, stat: int = 0) -> bytes:
    """Header of an accepted reply with an AUTH_NONE verifier (``stat`` 0 is SUCCESS)."""
    return _ACCEPTED_NULL.pack(xid, _REPLY, _ACCEPTED, 0, 0, stat)


def prog_mismatch_reply(xid: int, low: int, high: int) -> bytes:
    return accepted_reply(xid, AcceptStat.PROG_MISMATCH) + struct.pack(">II", low, high)


def rpc_mismatch_reply(xid: int) -> bytes:
    return struct.pack(">IIIIII", xid, MsgType.REPLY, ReplyStat.MSG_DENIED,
                       RejectStat.RPC_MISMATCH, RPC_VERSION, RPC_VERSION)


def auth_error_reply(xid: int, stat: AuthStat) -> bytes:
    return struct.pack(">IIIII", xid, MsgType.REPLY, ReplyStat.MSG_DENIED,
                       RejectStat.AUTH_ERROR, stat)


class RpcReply(NamedTuple):
    """A decoded reply header (client side)."""

    xid: int
    reply_stat: int
    accept_stat: int | None
    reject_stat: int | None
    detail: tuple[int, ...]


def parse_reply(u: Unpacker) -> RpcReply:
    """Decode a reply header, leaving ``u`` at the results when accepted."""
    xid = u.u32()
    if u.u32() != MsgType.REPLY:
        raise XdrError("not a reply")
    stat = u.u32()
    if stat == ReplyStat.MSG_ACCEPTED:
        u.u32()
        n = u.u32()
        u.take(n + (-n & 3))
        astat = u.u32()
        detail: tuple[int, ...] = ()
        if astat == AcceptStat.PROG_MISMATCH:
            detail = (u.u32(), u.u32())
        return RpcReply(xid, stat, astat, None, detail)
    if stat == ReplyStat.MSG_DENIED:
        rstat = u.u32()
        if rstat == RejectStat.RPC_MISMATCH:
            return RpcReply(xid, stat, None, rstat, (u.u32(), u.u32()))
        return RpcReply(xid, stat, None, rstat, (u.u32(),))
    raise XdrError(f"reply_stat {stat}")
