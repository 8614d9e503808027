"""NTLMv2 computations (MS-NLMP 3.3.2), for the server side: the NT hash kept per user,
and checking an NTLMv2 response against it."""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

from dittofs.smb.md4 import md4


def nt_hash(password: str) -> bytes:
    """NTOWFv1: MD4 of the UTF-16LE password; what the server stores instead of a password."""
    return md4(password.encode("utf-16-le"))


def ntowf_v2(nt: bytes, user: str, domain: str) -> bytes:
    """NTOWFv2 = HMAC_MD5(NT hash, UNICODE(Uppercase(User) + UserDom))."""
    return hmac.new(nt, (user.upper() + domain).encode("utf-16-le"), hashlib.md5).digest()


def client_blob(time: bytes, client_challenge: bytes, server_name: bytes) -> bytes:
    """The ``temp`` of 3.3.2 (NTLMv2_CLIENT_CHALLENGE): versions, time, challenge, AV pairs."""
    return b"\x01\x01" + bytes(6) + time + client_challenge + bytes(4) + server_name + bytes(4)


def nt_proof(response_key_nt: bytes, server_challenge: bytes, blob: bytes) -> bytes:
    return hmac.new(response_key_nt, server_challenge + blob, hashlib.md5).digest()


class Verified(NamedTuple):
    session_base_key: bytes
    domain: str  # the domain the response was computed with


def verify_ntlmv2(nt: bytes, user: str, domains: list[str], server_challenge: bytes,
                  nt_response: bytes) -> Verified | None:
    """Check an NtChallengeResponse (NTProofStr + blob).  Clients differ in the domain they
    put in NTOWFv2, so each candidate is tried.  Returns the session base key, or None."""
    if len(nt_response) < 16 + 28:
        return None
    proof, blob = nt_response[:16], nt_response[16:]
    for domain in domains:
        key = ntowf_v2(nt, user, domain)
        expected = nt_proof(key, server_challenge, blob)
        if hmac.compare_digest(expected, proof):
            return Verified(hmac.new(key, proof, hashlib.md5).digest(), domain)
    return None


def main() -> None:
    """Print the NT hash of a password read from the terminal (for ``users[].nt_hash``)."""
    import getpass
    import sys
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
    print(nt_hash(password.rstrip("\n")).hex())


if __name__ == "__main__":
    main()
