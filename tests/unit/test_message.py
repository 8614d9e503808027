"""ONC-RPC call and reply headers (RFC 5531 sections 8-9, appendix A)."""

from __future__ import annotations

import pytest

from dittofs.rpc.message import (
    AcceptStat,
    AuthStat,
    AuthUnix,
    RpcDenied,
    accepted_reply,
    auth_error_reply,
    encode_call,
    parse_call,
    parse_reply,
    prog_mismatch_reply,
    rpc_mismatch_reply,
)
from dittofs.rpc.xdr import Unpacker, XdrError
from tests.support.vectors import hexv as h

# An NFSv3 GETATTR call with AUTH_UNIX (as a Linux client sends it).
GETATTR_CALL = h("""
    12345678            xid
    00000000            msg_type CALL
    00000002            rpcvers 2
    000186a3            prog 100003 (NFS)
    00000003            vers 3
    00000001            proc 1 (GETATTR)
    00000001            cred flavor AUTH_UNIX
    00000020            cred length 32
      00000001          stamp
      00000004 686f7374 machinename "host"
      000003e8          uid 1000
      00000064          gid 100
      00000002          count of gids
      00000064 000003e8 100, 1000
    00000000 00000000   verf AUTH_NONE, empty
    00000004 61626364   the arguments: nfs_fh3 "abcd"
""")


def test_parse_getattr_call():
    u = Unpacker(GETATTR_CALL)
    call = parse_call(u)
    assert (call.xid, call.prog, call.vers, call.proc) == (0x12345678, 100003, 3, 1)
    assert call.cred == AuthUnix(1, b"host", 1000, 100, (100, 1000))
    assert bytes(u.data[u.pos:]) == h("00000004 61626364")


def test_encode_call_matches_vector():
    cred = AuthUnix(1, b"host", 1000, 100, (100, 1000))
    assert encode_call(0x12345678, 100003, 3, 1, cred) + h("00000004 61626364") == GETATTR_CALL


def test_auth_null_call():
    call = parse_call(Unpacker(encode_call(7, 100005, 3, 0)))
    assert call.cred is None and call.cred_flavor == 0


@pytest.mark.parametrize("fn,args,wire", [
    (accepted_reply, (0x12345678,), "12345678 00000001 00000000 00000000 00000000 00000000"),
    (accepted_reply, (1, AcceptStat.PROC_UNAVAIL),
     "00000001 00000001 00000000 00000000 00000000 00000003"),
    (accepted_reply, (1, AcceptStat.GARBAGE_ARGS),
     "00000001 00000001 00000000 00000000 00000000 00000004"),
    (prog_mismatch_reply, (2, 3, 3),
     "00000002 00000001 00000000 00000000 00000000 00000002 00000003 00000003"),
    (rpc_mismatch_reply, (3,), "00000003 00000001 00000001 00000000 00000002 00000002"),
    (auth_error_reply, (4, AuthStat.AUTH_BADCRED),
     "00000004 00000001 00000001 00000001 00000001"),
])
def test_reply_vectors(fn, args, wire):
    assert fn(*args) == h(wire)


def test_reply_round_trip():
    r = parse_reply(Unpacker(prog_mismatch_reply(9, 2, 3)))
    assert r.xid == 9 and r.accept_stat == AcceptStat.PROG_MISMATCH and r.detail == (2, 3)
    r = parse_reply(Unpacker(auth_error_reply(9, AuthStat.AUTH_TOOWEAK)))
    assert r.reject_stat == 1 and r.detail == (AuthStat.AUTH_TOOWEAK,)


def test_denials():
    wrong_version = bytearray(GETATTR_CALL)
    wrong_version[11] = 3
    with pytest.raises(RpcDenied) as e:
        parse_call(Unpacker(bytes(wrong_version)))
    assert e.value.reply == rpc_mismatch_reply(0x12345678)

    gss = bytearray(GETATTR_CALL)
    gss[27] = 6  # RPCSEC_GSS: not offered
    with pytest.raises(RpcDenied) as e:
        parse_call(Unpacker(bytes(gss)))
    assert e.value.reply == auth_error_reply(0x12345678, AuthStat.AUTH_BADCRED)

    bad_unix = bytearray(GETATTR_CALL)
    bad_unix[31] = 0x1C  # cred length 28: the gids list no longer fits
    with pytest.raises(RpcDenied) as e:
        parse_call(Unpacker(bytes(bad_unix)))
    assert e.value.reply == auth_error_reply(0x12345678, AuthStat.AUTH_BADCRED)

    verf = bytearray(GETATTR_CALL)
    verf[67] = 1  # verifier flavor AUTH_UNIX
    with pytest.raises(RpcDenied) as e:
        parse_call(Unpacker(bytes(verf)))
    assert e.value.reply == auth_error_reply(0x12345678, AuthStat.AUTH_BADVERF)


def test_unanswerable():
    with pytest.raises(XdrError):
        parse_call(Unpacker(GETATTR_CALL[:20]))
    reply = bytearray(GETATTR_CALL)
    reply[7] = 1  # a REPLY, not a CALL
    with pytest.raises(XdrError):
        parse_call(Unpacker(bytes(reply)))


def test_credentials_are_decoded_per_caller():
    """Decoded credentials are reused by their wire bytes: a call from another user, or a
    malformed one after a good one, must not get an earlier caller's identity."""
    for _ in range(2):
        assert parse_call(Unpacker(GETATTR_CALL)).cred.uid == 1000
    other = encode_call(5, 100003, 3, 1, AuthUnix(1, b"host", 0, 0, ()))
    assert parse_call(Unpacker(other)).cred == AuthUnix(1, b"host", 0, 0, ())
    assert parse_call(Unpacker(GETATTR_CALL)).cred.uid == 1000
    bad_unix = bytearray(GETATTR_CALL)
    bad_unix[31] = 0x1C
    for _ in range(2):
        with pytest.raises(RpcDenied):
            parse_call(Unpacker(bytes(bad_unix)))


@pytest.mark.parametrize("cut", [28, 32, 64, 68, 71])
def test_truncated_credential_or_verifier_is_badcred(cut):
    with pytest.raises(RpcDenied) as e:
        parse_call(Unpacker(GETATTR_CALL[:cut]))
    assert e.value.reply == auth_error_reply(0x12345678, AuthStat.AUTH_BADCRED)


def test_oversized_credential_is_badcred():
    big = bytearray(GETATTR_CALL)
    big[28:32] = (401).to_bytes(4, "big")
    with pytest.raises(RpcDenied) as e:
        parse_call(Unpacker(bytes(big) + bytes(400)))
    assert e.value.reply == auth_error_reply(0x12345678, AuthStat.AUTH_BADCRED)
