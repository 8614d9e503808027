"""SMB2 message signing (MS-SMB2 3.1.4.1) and SMB 3.x key derivation (3.1.4.2).

Three algorithms: HMAC-SHA256 (2.0.2, 2.1), AES-128-CMAC (3.x) and AES-128-GMAC (3.1.1
when both ends offer it in SMB2_SIGNING_CAPABILITIES: one AES-GCM call with the message
as associated data, cheaper than CMAC's chain of AES blocks).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

DIALECT_202, DIALECT_210, DIALECT_300, DIALECT_302, DIALECT_311 = (
    0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
#: SigningAlgorithmId values (2.2.3.1.7).
HMAC_SHA256, AES_CMAC, AES_GMAC = 0x0000, 0x0001, 0x0002
_SIG = slice(48, 64)
_ZERO16 = bytes(16)
_CANCEL = 0x000C


def kdf(key: bytes, label: bytes, context: bytes) -> bytes:
    """SP800-108 counter mode with HMAC-SHA256, r=32, L=128."""
    return KBKDFHMAC(algorithm=hashes.SHA256(), mode=Mode.CounterMode, length=16, rlen=4,
                     llen=4, location=CounterLocation.BeforeFixed, label=label,
                     context=context, fixed=None).derive(key)


def signing_key(dialect: int, session_key: bytes, preauth_hash: bytes = b"") -> bytes:
    key = session_key[:16].ljust(16, b"\x00")
    if dialect < DIALECT_300:
        return key
    if dialect == DIALECT_311:
        return kdf(key, b"SMBSigningKey\x00", preauth_hash)
    return kdf(key, b"SMB2AESCMAC\x00", b"SmbSign\x00")


def algorithm(dialect: int, negotiated: int | None = None) -> int:
    """The signing algorithm of a connection: HMAC-SHA256 before 3.0, AES-CMAC for 3.x
    unless 3.1.1 negotiated another (3.1.4.1)."""
    if dialect < DIALECT_300:
        return HMAC_SHA256
    if dialect == DIALECT_311 and negotiated is not None:
        return negotiated
    return AES_CMAC


@functools.lru_cache(maxsize=1024)
def _keyed(alg: int, key: bytes) -> Any:
    """A MAC keyed for one session: CMAC and HMAC contexts are copied per message (setting
    them up anew cost three times the MAC itself); an AESGCM object is reused as it is."""
    if alg == HMAC_SHA256:
        return hmac.new(key, digestmod=hashlib.sha256)
    if alg == AES_GMAC:
        return AESGCM(key)
    return cmac.CMAC(algorithms.AES(key))


def _gmac_nonce(message: Any) -> bytes:
    """MessageId, then a 32-bit word: bit 0 set when the server sends, bit 1 for a CANCEL
    request (3.1.4.1).  The server's messages carry SMB2_FLAGS_SERVER_TO_REDIR (bit 0 of
    Flags), so the header itself says which side sent it."""
    info = message[16] & 0x01
    if message[12] == _CANCEL and message[13] == 0:
        info |= 0x02
    return bytes(message[24:32]) + bytes((info, 0, 0, 0))


def _gmac(key: bytes, zeroed: Any) -> bytes:
    """AES-GMAC of a message whose signature field is already zero: it is the AAD."""
    return _keyed(AES_GMAC, key).encrypt(_gmac_nonce(zeroed), b"", zeroed)


def signature(alg: int, key: bytes, message: bytes | bytearray) -> bytes:
    """The signature of ``message`` (its own signature field is taken as zero)."""
    view = memoryview(message)
    try:
        if alg == AES_GMAC:
            return _gmac(key, b"".join((view[:48], _ZERO16, view[64:])))
        c = _keyed(alg, key).copy()
        c.update(view[:48])
        c.update(_ZERO16)
        c.update(view[64:])
    finally:
        view.release()
    if alg == HMAC_SHA256:
        return c.digest()[:16]
    return c.finalize()


def sign(alg: int, key: bytes, message: bytearray) -> None:
    """Set SMB2_FLAGS_SIGNED and write the signature into ``message`` in place."""
    message[16] |= 0x08
    if alg == AES_GMAC:  # zeroed in place, the message itself is the AAD: no copy
        message[_SIG] = _ZERO16
        message[_SIG] = _gmac(key, message)
        return
    message[_SIG] = signature(alg, key, message)


def verify(alg: int, key: bytes, message: bytes) -> bool:
    return hmac.compare_digest(signature(alg, key, message), bytes(message[_SIG]))


def preauth(previous: bytes, message: bytes) -> bytes:
    """One step of the 3.1.1 pre-authentication integrity hash (SHA-512)."""
    return hashlib.sha512(previous + message).digest()
