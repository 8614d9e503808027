"""MD4 (RFC 1320 appendix A.5) and NTLMv2 (MS-NLMP 4.2.4) against their published vectors."""

from __future__ import annotations

import pytest

from dittofs.smb.md4 import md4
from dittofs.smb.ntlm_crypto import client_blob, nt_hash, nt_proof, ntowf_v2, verify_ntlmv2
from tests.support.vectors import hexv


@pytest.mark.parametrize("message,digest", [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
])
def test_md4_rfc1320(message, digest):
    assert md4(message).hex() == digest


def test_nt_hash_of_password():
    assert nt_hash("Password").hex() == "a4f49c406510bdcab6824ee7c30fd852"


# MS-NLMP 4.2.4: User "User", UserDom "Domain", Passwd "Password".
SERVER_CHALLENGE = bytes.fromhex("0123456789abcdef")
CLIENT_CHALLENGE = bytes.fromhex("aaaaaaaaaaaaaaaa")
TIME = bytes(8)
SERVER_NAME = hexv("""
    0200 0c00 44006f006d00610069006e00    MsvAvNbDomainName, 12 bytes: "Domain"
    0100 0c00 530065007200760065007200    MsvAvNbComputerName, 12 bytes: "Server"
    0000 0000                             MsvAvEOL
""")


def test_ntlmv2_vectors():
    key = ntowf_v2(nt_hash("Password"), "User", "Domain")
    assert key.hex() == "0c868a403bfd7a93a3001ef22ef02e3f"
    blob = client_blob(TIME, CLIENT_CHALLENGE, SERVER_NAME)
    proof = nt_proof(key, SERVER_CHALLENGE, blob)
    assert proof.hex() == "68cd0ab851e51c96aabc927bebef6a1c"
    ok = verify_ntlmv2(nt_hash("Password"), "User", ["", "Domain"], SERVER_CHALLENGE,
                       proof + blob)
    assert ok is not None and ok.domain == "Domain"
    assert ok.session_base_key.hex() == "8de40ccadbc14a82f15cb0ad0de95ca3"


def test_wrong_password_or_tampered_blob_fails():
    key = ntowf_v2(nt_hash("Password"), "User", "Domain")
    blob = client_blob(TIME, CLIENT_CHALLENGE, SERVER_NAME)
    response = nt_proof(key, SERVER_CHALLENGE, blob) + blob
    assert verify_ntlmv2(nt_hash("password"), "User", ["Domain"], SERVER_CHALLENGE,
                         response) is None
    tampered = bytearray(response)
    tampered[-5] ^= 1
    assert verify_ntlmv2(nt_hash("Password"), "User", ["Domain"], SERVER_CHALLENGE,
                         bytes(tampered)) is None
    assert verify_ntlmv2(nt_hash("Password"), "User", ["Domain"], SERVER_CHALLENGE,
                         b"short") is None
