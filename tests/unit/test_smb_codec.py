"""Byte-exact tests of the SMB2 codecs: NTLMSSP (MS-NLMP 4.2.4 vectors), SPNEGO against
pyspnego's client, signing and key derivation, message layouts, srvsvc, and a fuzz of the
connection state machine."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
import spnego
from hypothesis import given, settings
from hypothesis import strategies as st

from dittofs.metadata.service import MetadataService
from dittofs.runtime.shares import ShareTable
from dittofs.smb import messages as M
from dittofs.smb import ntlmssp, signing
from dittofs.smb import spnego as sp
from dittofs.smb.connection import Connection, Disconnect
from dittofs.smb.header import HeaderError
from dittofs.smb.ntlm_crypto import client_blob, nt_hash, nt_proof, ntowf_v2
from dittofs.smb.server import SmbServer
from dittofs.smb.sessions import Session, auth_step
from dittofs.smb.srvsvc import NDR32, SRVSVC, ShareInfo, SrvsvcPipe
from dittofs.smb.status import Status
from dittofs.smb.users import User, UserDirectory
from tests.support.vectors import hexv

# MS-NLMP 4.2.4: User / Domain / Password, server challenge, client challenge, time 0
SERVER_CHALLENGE = hexv("0123456789abcdef")
CLIENT_CHALLENGE = b"\xaa" * 8
RANDOM_SESSION_KEY = b"\x55" * 16
ENCRYPTED_SESSION_KEY = hexv("c5dad2544fc9799094ce1ce90bc9d03e")
AV_PAIRS = hexv("02000c0044006f006d00610069006e00 01000c0053006500720076006500720000000000")
FLAGS = hexv("33828ae2")  # 4.2.4: NEGOTIATE_KEY_EXCH | 56 | 128 | VERSION | TARGET_INFO | ...


def _field(data: bytes, offset: int) -> tuple[bytes, int]:
    return struct.pack("<HHI", len(data), len(data), offset), offset + len(data)


def authenticate_message(user: str, domain: str, nt_response: bytes, enc_key: bytes,
                         flags: int) -> bytes:
    payload = [b"", nt_response, domain.encode("utf-16-le"), user.encode("utf-16-le"),
               "COMPUTER".encode("utf-16-le"), enc_key]
    off = 88
    fields = b""
    for p in payload:
        f, off = _field(p, off)
        fields += f
    return (ntlmssp.SIGNATURE + struct.pack("<I", 3) + fields + struct.pack("<I", flags)
            + bytes(8) + bytes(16) + b"".join(payload))


def test_ntlmv2_authenticate_from_msnlmp_vectors():
    flags = struct.unpack("<I", FLAGS)[0]
    acc = ntlmssp.Acceptor("Server", "Domain", challenge=SERVER_CHALLENGE)
    acc.challenge(ntlmssp.SIGNATURE + struct.pack("<II", 1, flags) + bytes(16))
    assert acc.flags & ntlmssp.NEGOTIATE_KEY_EXCH
    key = ntowf_v2(nt_hash("Password"), "User", "Domain")
    assert key == hexv("0c868a403bfd7a93a3001ef22ef02e3f")
    blob = client_blob(bytes(8), CLIENT_CHALLENGE, AV_PAIRS)
    proof = nt_proof(key, SERVER_CHALLENGE, blob)
    assert proof == hexv("68cd0ab851e51c96aabc927bebef6a1c")
    msg = authenticate_message("User", "Domain", proof + blob, ENCRYPTED_SESSION_KEY, flags)
    auth = ntlmssp.parse_authenticate(msg)
    assert (auth.user, auth.domain, auth.workstation) == ("User", "Domain", "COMPUTER")
    result = acc.authenticate(msg, auth, nt_hash("Password"))
    assert result is not None and not result.anonymous
    assert result.session_key == RANDOM_SESSION_KEY  # RC4(SessionBaseKey, encrypted key)
    # the wrong password, and a tampered proof, are refused
    acc2 = ntlmssp.Acceptor("Server", "Domain", challenge=SERVER_CHALLENGE)
    acc2.challenge(ntlmssp.SIGNATURE + struct.pack("<II", 1, flags) + bytes(16))
    assert acc2.authenticate(msg, auth, nt_hash("password")) is None
    bad = authenticate_message("User", "Domain", bytes(16) + blob, ENCRYPTED_SESSION_KEY, flags)
    assert acc2.authenticate(bad, ntlmssp.parse_authenticate(bad), nt_hash("Password")) is None


def test_challenge_message_layout():
    acc = ntlmssp.Acceptor("DITTOFS", "WORKGROUP", challenge=SERVER_CHALLENGE, now_ns=0)
    msg = acc.challenge(ntlmssp.SIGNATURE + struct.pack("<II", 1, 0xE2088297) + bytes(16))
    assert msg[:12] == ntlmssp.SIGNATURE + b"\x02\x00\x00\x00"
    tlen, _, toff = struct.unpack_from("<HHI", msg, 12)
    assert msg[toff:toff + tlen] == "WORKGROUP".encode("utf-16-le")
    assert msg[24:32] == SERVER_CHALLENGE
    ilen, _, ioff = struct.unpack_from("<HHI", msg, 40)
    av = ntlmssp.parse_av_pairs(msg[ioff:ioff + ilen])
    assert av[ntlmssp.AV_NB_COMPUTER] == "DITTOFS".encode("utf-16-le")
    assert av[ntlmssp.AV_TIMESTAMP] == struct.pack("<Q", 116444736000000000)
    assert msg[ioff + ilen - 4:ioff + ilen] == bytes(4)  # MsvAvEOL


class _Runtime:
    def __init__(self) -> None:
        self.metadata = MetadataService()
        self.shares = ShareTable()
        self.metrics = None


def make_connection(sent: list | None = None) -> Connection:
    users = UserDirectory([User("alice", 1000, 1000, (), nt_hash("Alice-pw-1"))])
    server = SmbServer(_Runtime(), users, failure_limit=0)
    out = sent if sent is not None else []
    return Connection(server, ("127.0.0.1", 1), ("127.0.0.1", 445), out.extend, lambda: None)


def test_spnego_handshake_with_pyspnego_client_and_mech_list_mic():
    conn = make_connection()
    conn.dialect = 0x0302
    client = spnego.client("alice", "Alice-pw-1", hostname="server", protocol="negotiate")
    s = Session(1)
    status, token = auth_step(conn, s, client.step(), 0)
    assert status == Status.MORE_PROCESSING_REQUIRED
    status, token = auth_step(conn, s, client.step(token), 0)
    assert status == Status.SUCCESS and s.valid and s.user.name == "alice"
    client.step(token)  # verifies the server's mechListMIC; raises if wrong
    assert client.complete
    assert client.session_key == s.session_key
    # SMB 3.0 signing key from the same session key, computed independently (SP800-108)
    fixed = b"\x00\x00\x00\x01" + b"SMB2AESCMAC\x00" + b"\x00" + b"SmbSign\x00" + \
        b"\x00\x00\x00\x80"
    assert s.signing_key == hmac.new(client.session_key, fixed, hashlib.sha256).digest()[:16]


def test_spnego_wrong_password_is_logon_failure():
    conn = make_connection()
    client = spnego.client("alice", "wrong", hostname="server", protocol="negotiate")
    s = Session(1)
    status, token = auth_step(conn, s, client.step(), 0)
    status, token = auth_step(conn, s, client.step(token), 0)
    assert status == Status.LOGON_FAILURE and not s.valid


def test_raw_ntlmssp_as_the_linux_kernel_sends_it():
    conn = make_connection()
    client = spnego.client("alice", "Alice-pw-1", hostname="server", protocol="ntlm")
    s = Session(1)
    status, token = auth_step(conn, s, client.step(), 0)
    assert status == Status.MORE_PROCESSING_REQUIRED and token[:8] == b"NTLMSSP\x00"
    status, token = auth_step(conn, s, client.step(token), 0)
    assert status == Status.SUCCESS and token == b"" and s.session_key == client.session_key


def test_neg_token_init2_is_der_that_names_ntlmssp():
    tok = sp.neg_token_init2()
    tag, value, end = sp.read_tlv(tok)
    assert tag == 0x60 and end == len(tok)
    parsed = sp.parse_client_token(tok)
    assert parsed.mech_types == [sp.NTLMSSP_OID]
    assert sp.encode_oid(sp.NTLMSSP_OID) == hexv("060a2b06010401823702020a")


def test_signing_kdf_and_cmac():
    key = bytes(range(16))
    # 3.1.1: SP800-108 counter mode, label "SMBSigningKey\0", context = preauth hash
    preauth = hashlib.sha512(b"x").digest()
    fixed = b"\x00\x00\x00\x01" + b"SMBSigningKey\x00\x00" + preauth + b"\x00\x00\x00\x80"
    assert signing.signing_key(0x0311, key, preauth) == \
        hmac.new(key, fixed, hashlib.sha256).digest()[:16]
    assert signing.signing_key(0x0210, key) == key
    # RFC 4493 AES-CMAC example 2 through our signer (signature field zeroed by design)
    rfc_key = hexv("2b7e151628aed2a6abf7158809cf4f3c")
    msg = bytearray(hexv("6bc1bee22e409f96e93d7e117393172a") * 3 + bytes(16))
    msg[48:64] = b"\xff" * 16  # ignored: the signature is computed over zeros
    zeroed = bytes(msg[:48]) + bytes(16)
    from cryptography.hazmat.primitives import cmac
    from cryptography.hazmat.primitives.ciphers import algorithms
    c = cmac.CMAC(algorithms.AES(rfc_key))
    c.update(zeroed)
    assert signing.algorithm(0x0300) == signing.algorithm(0x0311) == signing.AES_CMAC
    assert signing.signature(signing.AES_CMAC, rfc_key, msg) == c.finalize()
    c = cmac.CMAC(algorithms.AES(rfc_key))
    c.update(b"")
    assert c.finalize() == hexv("bb1d6929e95937287fa37d129b756746")  # RFC 4493 example 1
    # 2.x: HMAC-SHA256 truncated to 16 bytes
    want = hmac.new(key, zeroed, hashlib.sha256).digest()[:16]
    assert signing.algorithm(0x0202) == signing.algorithm(0x0210) == signing.HMAC_SHA256
    assert signing.signature(signing.HMAC_SHA256, key, msg) == want
    signing.sign(signing.AES_CMAC, rfc_key, msg)
    assert msg[16] & 0x08 and signing.verify(signing.AES_CMAC, rfc_key, bytes(msg))
    msg[70 % len(msg)] ^= 1
    assert not signing.verify(signing.AES_CMAC, rfc_key, bytes(msg))


@pytest.mark.parametrize("command,flags", [(8, 0x0), (8, 0x1), (0x0C, 0x0), (5, 0x1)])
def test_gmac_signatures_match_an_independent_client(command, flags):
    """AES-128-GMAC (3.1.1): checked against smbprotocol's own signer, which builds the
    nonce from MessageId, the sender's role and CANCEL, and signs the zeroed header."""
    from types import SimpleNamespace

    from smbprotocol.connection import Connection as ClientConnection
    from smbprotocol.connection import Dialects, SigningAlgorithms

    key = bytes(range(16, 32))
    message_id = 0x0102030405060708
    msg = bytearray(64 + 40)
    msg[0:4] = b"\xfeSMB"
    msg[12:14] = command.to_bytes(2, "little")
    msg[16:20] = flags.to_bytes(4, "little")
    msg[24:32] = message_id.to_bytes(8, "little")
    msg[64:] = bytes(range(40))
    client = SimpleNamespace(dialect=Dialects.SMB_3_1_1,
                             signing_algorithm_id=SigningAlgorithms.AES_GMAC)
    want = ClientConnection._generate_signature(client, bytes(msg), key, message_id,
                                                bool(flags & 1), command)
    assert signing.signature(signing.AES_GMAC, key, msg) == want
    msg[48:64] = b"\xee" * 16  # the field is ignored, as for CMAC
    assert signing.signature(signing.AES_GMAC, key, msg) == want
    signing.sign(signing.AES_GMAC, key, msg)
    assert msg[16] & 0x08 and signing.verify(signing.AES_GMAC, key, bytes(msg))
    other = bytearray(msg)
    other[24] ^= 1  # another MessageId: another nonce
    assert not signing.verify(signing.AES_GMAC, key, bytes(other))


def test_negotiate_request_parse_and_response_layout():
    guid = bytes(range(16))
    ctx_data = struct.pack("<HH", 1, 32) + struct.pack("<H", 1) + b"S" * 32
    body = struct.pack("<HHHHI16sIHH", 36, 2, 1, 0, 0x7F, guid, 64 + 36 + 4, 1, 0)
    body += struct.pack("<2H", 0x0302, 0x0311)
    body += struct.pack("<HHI", 1, len(ctx_data), 0) + ctx_data
    msg = bytes(64) + body
    req = M.parse_negotiate(msg)
    assert req.dialects == [0x0302, 0x0311] and req.client_guid == guid
    assert req.contexts == [(1, ctx_data)] and req.security_mode == 1
    resp = M.negotiate_response(1, 0x0311, guid, 4, 1 << 23, 1 << 23, 1 << 23, 0, b"TOK",
                                [(1, b"abc"), (8, b"\x01\x00\x01\x00")])
    assert struct.unpack_from("<HHHH", resp) == (65, 1, 0x0311, 2)
    off, n, ctx_off = struct.unpack_from("<HHI", resp, 56)
    assert (off, n) == (128, 3) and resp[64:67] == b"TOK"
    assert ctx_off % 8 == 0 and resp[ctx_off - 64:ctx_off - 64 + 11] == \
        struct.pack("<HHI", 1, 3, 0) + b"abc"
    second = ctx_off - 64 + 16  # 8 + 3 rounded up to 8
    assert resp[second:second + 12] == struct.pack("<HHI", 8, 4, 0) + b"\x01\x00\x01\x00"


def test_error_body_and_wrong_structure_size():
    assert M.error_body() == hexv("0900 00 00 00000000 00")
    bad = bytes(64) + struct.pack("<HH", 35, 0) + bytes(40)
    try:
        M.parse_negotiate(bad)
    except M.BadRequest as e:
        assert "StructureSize 35" in str(e)
    else:  # pragma: no cover
        raise AssertionError("accepted StructureSize 35")


def test_create_contexts_round_trip():
    blob = M.create_contexts([(b"MxAc", struct.pack("<II", 0, 0x1F01FF)),
                              (b"QFid", bytes(32))])
    assert M.parse_create_contexts(blob) == {b"MxAc": struct.pack("<II", 0, 0x1F01FF),
                                             b"QFid": bytes(32)}
    assert struct.unpack_from("<I", blob)[0] % 8 == 0


def test_srvsvc_bind_and_share_enum():
    pipe = SrvsvcPipe(lambda: [ShareInfo("export", 0, "/export"),
                               ShareInfo("IPC$", 0x80000003, "IPC Service")])
    ctx = struct.pack("<HBB", 0, 1, 0) + SRVSVC + struct.pack("<HH", 3, 0) + NDR32 + \
        struct.pack("<I", 2)
    bind_body = struct.pack("<HHIB3x", 4280, 4280, 0, 1) + ctx
    bind = struct.pack("<BBBB4sHHI", 5, 0, 11, 3, b"\x10\0\0\0", 16 + len(bind_body), 0, 7)
    ack = pipe.transact(bind + bind_body)
    assert ack[2] == 12 and struct.unpack_from("<I", ack, 12)[0] == 7
    assert b"\\PIPE\\srvsvc\x00" in ack
    assert ack[-24:] == struct.pack("<HH", 0, 0) + NDR32 + struct.pack("<I", 2)
    # NetrShareEnum level 1, no server name
    stub = struct.pack("<IIIII", 0, 1, 1, 0x20000, 0) + struct.pack("<IIII", 0, 0, 0xFFFFFFFF, 0)
    req = struct.pack("<IHH", len(stub), 0, 15) + stub
    call = struct.pack("<BBBB4sHHI", 5, 0, 0, 3, b"\x10\0\0\0", 16 + len(req), 0, 8) + req
    resp = pipe.transact(call)
    assert resp[2] == 2
    out = resp[24:]
    level, switch, _, count, _, max_count = struct.unpack_from("<IIIIII", out)
    assert (level, switch, count, max_count) == (1, 1, 2, 2)
    assert "export\x00".encode("utf-16-le") in out and "IPC$\x00".encode("utf-16-le") in out
    assert struct.unpack_from("<I", out, len(out) - 4)[0] == 0  # WERROR_OK


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4))
def test_fuzz_connection_never_fails_unexpectedly(messages):
    """Random SMB2 messages after a NEGOTIATE: only protocol errors, never a crash."""
    sent: list = []
    conn = make_connection(sent)
    failures = []
    conn._failed = lambda f: failures.append(f)
    neg = struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                      bytes(16))
    conn.received(neg + struct.pack("<HHHHI16sIHH", 36, 1, 1, 0, 0, bytes(16), 0, 0, 0)
                  + struct.pack("<H", 0x0210))
    assert conn.negotiated
    for i, m in enumerate(messages):
        hdr = struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 1, 0, m[0] % 20 if m else 0,
                          1, 0, 0, i + 1, 0, 0, 0, bytes(16))
        conn.received(hdr + m[1:] if m and m[0] & 0x80 else m)
    for f in failures:
        assert f.check(Disconnect, HeaderError, M.BadRequest), f.getTraceback()
