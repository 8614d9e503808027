"""NTLMSSP messages (MS-NLMP 2.2.1) and the acceptor's side of one exchange, sans-IO.

``Acceptor.challenge`` answers a NEGOTIATE_MESSAGE; ``Acceptor.authenticate`` parses the
AUTHENTICATE_MESSAGE and, given the user's NT hash, verifies it (NTLMv2 only) and derives
the exported session key; ``mech_list_mic``/``verify_mic`` are the SPNEGO MIC (3.4.4).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from typing import NamedTuple

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from dittofs.smb.ntlm_crypto import verify_ntlmv2

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3

NEGOTIATE_UNICODE = 0x00000001
NEGOTIATE_OEM = 0x00000002
REQUEST_TARGET = 0x00000004
NEGOTIATE_SIGN = 0x00000010
NEGOTIATE_SEAL = 0x00000020
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ANONYMOUS = 0x00000800
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_SERVER = 0x00020000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000

#: Flags we agree to when the client offers them.
_OFFERED = (NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_SIGN | NEGOTIATE_SEAL
            | NEGOTIATE_NTLM | NEGOTIATE_ALWAYS_SIGN | NEGOTIATE_EXTENDED_SESSIONSECURITY
            | NEGOTIATE_VERSION | NEGOTIATE_128 | NEGOTIATE_KEY_EXCH | NEGOTIATE_56)

AV_EOL, AV_NB_COMPUTER, AV_NB_DOMAIN, AV_DNS_COMPUTER, AV_DNS_DOMAIN = 0, 1, 2, 3, 4
AV_FLAGS, AV_TIMESTAMP = 6, 7
AV_FLAG_MIC_PRESENT = 0x2

_VERSION = struct.pack("<BBHxxxB", 10, 0, 20348, 15)  # Windows 10.0 build, NTLM revision 15
_FIELDS = struct.Struct("<HHI")
_CHALLENGE = struct.Struct("<8sIHHII8s8sHHI8s")


class NtlmError(ValueError):
    """Malformed NTLMSSP message."""


def filetime(ns: int | None = None) -> int:
    if ns is None:
        ns = time.time_ns()
    return ns // 100 + 116444736000000000


def av_pairs(pairs: list[tuple[int, bytes]]) -> bytes:
    out = b"".join(struct.pack("<HH", k, len(v)) + v for k, v in pairs)
    return out + struct.pack("<HH", AV_EOL, 0)


def parse_av_pairs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(data):
        k, n = struct.unpack_from("<HH", data, off)
        off += 4
        if k == AV_EOL:
            break
        out[k] = data[off:off + n]
        off += n
    return out


def _field(msg: bytes, at: int) -> bytes:
    if at + 8 > len(msg):
        raise NtlmError("truncated message")
    n, _, off = _FIELDS.unpack_from(msg, at)
    if n and (off + n > len(msg) or off < 8):
        raise NtlmError("a field points outside the message")
    return msg[off:off + n]


class Authenticate(NamedTuple):
    lm_response: bytes
    nt_response: bytes
    domain: str
    user: str
    workstation: str
    encrypted_session_key: bytes
    flags: int
    mic_offset: int | None  # where the MIC sits, when the message has one


def parse_authenticate(msg: bytes) -> Authenticate:
    if len(msg) < 64 or msg[:8] != SIGNATURE or struct.unpack_from("<I", msg, 8)[0] != 3:
        raise NtlmError("not an AUTHENTICATE_MESSAGE")
    flags = struct.unpack_from("<I", msg, 60)[0]
    uni = bool(flags & NEGOTIATE_UNICODE)

    def text(b: bytes) -> str:
        return b.decode("utf-16-le", "replace") if uni else b.decode("latin-1")

    mic_offset = None
    nt = _field(msg, 20)
    if len(nt) > 16:
        av = parse_av_pairs(nt[16 + 28:])
        avflags = av.get(AV_FLAGS)
        if avflags and len(avflags) == 4 and struct.unpack("<I", avflags)[0] & AV_FLAG_MIC_PRESENT:
            mic_offset = 72
            if len(msg) < 88:
                raise NtlmError("MIC announced but absent")
    return Authenticate(_field(msg, 12), nt, text(_field(msg, 28)), text(_field(msg, 36)),
                        text(_field(msg, 44)), _field(msg, 52), flags, mic_offset)


def _rc4(key: bytes) -> object:
    return Cipher(ARC4(key), mode=None).encryptor()


def _md5(*parts: bytes) -> bytes:
    return hashlib.md5(b"".join(parts)).digest()


class Result(NamedTuple):
    user: str
    domain: str
    session_key: bytes  # the exported session key; b"" for anonymous
    anonymous: bool


class Acceptor:
    """One NTLM exchange, server side."""

    def __init__(self, netbios_name: str = "DITTOFS", domain: str = "WORKGROUP",
                 dns_name: str = "dittofs", challenge: bytes | None = None,
                 now_ns: int | None = None) -> None:
        self.netbios_name = netbios_name.upper()
        self.domain = domain.upper()
        self.dns_name = dns_name
        self.server_challenge = challenge or os.urandom(8)
        self.now_ns = now_ns
        self.negotiate_msg = b""
        self.challenge_msg = b""
        self.flags = 0
        self.session_key = b""
        self._client_sign = self._server_sign = b""
        self._client_seal = self._server_seal = None

    def challenge(self, negotiate: bytes) -> bytes:
        if len(negotiate) < 16 or negotiate[:8] != SIGNATURE or \
                struct.unpack_from("<I", negotiate, 8)[0] != NEGOTIATE:
            raise NtlmError("not a NEGOTIATE_MESSAGE")
        self.negotiate_msg = bytes(negotiate)
        client_flags = struct.unpack_from("<I", negotiate, 12)[0]
        flags = (client_flags & _OFFERED) | NEGOTIATE_NTLM | NEGOTIATE_TARGET_INFO \
            | TARGET_TYPE_SERVER | NEGOTIATE_VERSION
        if not client_flags & NEGOTIATE_UNICODE:
            flags |= NEGOTIATE_OEM
        if flags & NEGOTIATE_EXTENDED_SESSIONSECURITY:
            flags |= NEGOTIATE_EXTENDED_SESSIONSECURITY
        self.flags = flags
        target = self.domain.encode("utf-16-le")
        info = av_pairs([
            (AV_NB_DOMAIN, self.domain.encode("utf-16-le")),
            (AV_NB_COMPUTER, self.netbios_name.encode("utf-16-le")),
            (AV_DNS_DOMAIN, self.dns_name.encode("utf-16-le")),
            (AV_DNS_COMPUTER, self.dns_name.encode("utf-16-le")),
            (AV_TIMESTAMP, struct.pack("<Q", filetime(self.now_ns))),
        ])
        base = _CHALLENGE.size
        msg = _CHALLENGE.pack(SIGNATURE, CHALLENGE, len(target), len(target), base, flags,
                              self.server_challenge, bytes(8), len(info), len(info),
                              base + len(target), _VERSION) + target + info
        self.challenge_msg = msg
        return msg

    def authenticate(self, msg: bytes, auth: Authenticate, nt_hash: bytes | None) -> Result | None:
        """Verify ``auth`` (parsed from ``msg``) against the user's NT hash.  Anonymous
        logons return a Result with ``anonymous`` set; a failed check returns None."""
        if not auth.user and not auth.nt_response and auth.lm_response in (b"", b"\x00"):
            return Result("", "", b"", True)
        if nt_hash is None or len(auth.nt_response) <= 24:
            return None  # unknown user, or NTLMv1 (refused)
        domains = list(dict.fromkeys([auth.domain, auth.domain.upper(), "", self.domain]))
        ok = verify_ntlmv2(nt_hash, auth.user, domains, self.server_challenge, auth.nt_response)
        if ok is None:
            return None
        key = ok.session_base_key
        if auth.flags & NEGOTIATE_KEY_EXCH and self.flags & NEGOTIATE_KEY_EXCH:
            if len(auth.encrypted_session_key) != 16:
                return None
            key = _rc4(key).update(auth.encrypted_session_key)
        if auth.mic_offset is not None:
            mic = msg[72:88]
            zeroed = msg[:72] + bytes(16) + msg[88:]
            want = hmac.new(key, self.negotiate_msg + self.challenge_msg + zeroed,
                            hashlib.md5).digest()
            if not hmac.compare_digest(mic, want):
                return None
        self.session_key = key
        self._client_sign = _md5(key, b"session key to client-to-server signing key magic "
                                      b"constant\x00")
        self._server_sign = _md5(key, b"session key to server-to-client signing key magic "
                                      b"constant\x00")
        self._client_seal = _rc4(_md5(key, b"session key to client-to-server sealing key magic "
                                           b"constant\x00"))
        self._server_seal = _rc4(_md5(key, b"session key to server-to-client sealing key magic "
                                           b"constant\x00"))
        return Result(auth.user, auth.domain, key, False)

    def _mac(self, sign_key: bytes, seal: object, seq: int, message: bytes) -> bytes:
        checksum = hmac.new(sign_key, struct.pack("<I", seq) + message, hashlib.md5).digest()[:8]
        if self.flags & NEGOTIATE_KEY_EXCH:
            checksum = seal.update(checksum)  # type: ignore[attr-defined]
        return struct.pack("<I", 1) + checksum + struct.pack("<I", seq)

    def verify_mic(self, mech_types_der: bytes, mic: bytes) -> bool:
        """The client's mechListMIC over the MechTypeList it sent (sequence number 0)."""
        want = self._mac(self._client_sign, self._client_seal, 0, mech_types_der)
        return hmac.compare_digest(want, mic)

    def mech_list_mic(self, mech_types_der: bytes) -> bytes:
        return self._mac(self._server_sign, self._server_seal, 0, mech_types_der)
