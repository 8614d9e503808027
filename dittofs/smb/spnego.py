"""The SPNEGO (RFC 4178) tokens an NTLM-only acceptor needs, in DER, sans-IO.

Only what SMB2 session set-up carries: the server's NegTokenInit2 hint in NEGOTIATE,
the client's NegTokenInit (wrapped in the GSS-API InitialContextToken) and NegTokenResp.
"""

from __future__ import annotations

from typing import NamedTuple

SPNEGO_OID = "1.3.6.1.5.5.2"
NTLMSSP_OID = "1.3.6.1.4.1.311.2.2.10"

ACCEPT_COMPLETED = 0
ACCEPT_INCOMPLETE = 1
REJECT = 2


class DerError(ValueError):
    """Not the DER we expect."""


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _len(len(value)) + value


def read_tlv(data: bytes, off: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, offset after) of the element at ``off``."""
    if off + 2 > len(data):
        raise DerError("truncated element")
    tag = data[off]
    n = data[off + 1]
    off += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or off + k > len(data):
            raise DerError("bad length")
        n = int.from_bytes(data[off:off + k], "big")
        off += k
    if off + n > len(data):
        raise DerError("element overruns its container")
    return tag, data[off:off + n], off + n


def children(value: bytes) -> list[tuple[int, bytes]]:
    out = []
    off = 0
    while off < len(value):
        tag, v, off = read_tlv(value, off)
        out.append((tag, v))
    return out


def encode_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    body = bytearray([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def decode_oid(value: bytes) -> str:
    if not value:
        raise DerError("empty OID")
    parts = [value[0] // 40, value[0] % 40]
    n = 0
    for b in value[1:]:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(n)
            n = 0
    return ".".join(map(str, parts))


def mech_type_list(oids: list[str]) -> bytes:
    return tlv(0x30, b"".join(encode_oid(o) for o in oids))


def neg_token_init2() -> bytes:
    """The hint the server puts in its NEGOTIATE response: NTLMSSP is the only mechanism."""
    hints = tlv(0xA3, tlv(0x30, tlv(0xA0, tlv(0x1B, b"not_defined_in_RFC4178@please_ignore"))))
    init = tlv(0x30, tlv(0xA0, mech_type_list([NTLMSSP_OID])) + hints)
    return tlv(0x60, encode_oid(SPNEGO_OID) + tlv(0xA0, init))


class ClientToken(NamedTuple):
    mech_types: list[str]  # empty in a NegTokenResp
    mech_types_der: bytes  # the MechTypeList exactly as sent (what mechListMIC signs)
    mech_token: bytes | None
    mech_list_mic: bytes | None


def parse_client_token(data: bytes) -> ClientToken:
    """A NegTokenInit (inside the InitialContextToken) or a NegTokenResp."""
    tag, value, _ = read_tlv(data)
    if tag == 0x60:
        inner = children(value)
        if len(inner) < 2 or inner[0][0] != 0x06 or decode_oid(inner[0][1]) != SPNEGO_OID:
            raise DerError("not an SPNEGO token")
        tag, value = inner[1]
        if tag != 0xA0:
            raise DerError("expected NegTokenInit")
        seq_tag, seq, _ = read_tlv(value)
        if seq_tag != 0x30:
            raise DerError("NegTokenInit is not a SEQUENCE")
        mechs: list[str] = []
        mechs_der = b""
        token = mic = None
        for t, v in children(seq):
            if t == 0xA0:
                mechs_der = v
                st, sv, _ = read_tlv(v)
                mechs = [decode_oid(ov) for ot, ov in children(sv) if ot == 0x06]
            elif t == 0xA2:
                token = _octets(v)
            elif t == 0xA3 and v[:1] == b"\x04":  # (in a NegTokenInit2 [3] is negHints)
                mic = _octets(v)
        return ClientToken(mechs, mechs_der, token, mic)
    if tag == 0xA1:
        seq_tag, seq, _ = read_tlv(value)
        if seq_tag != 0x30:
            raise DerError("NegTokenResp is not a SEQUENCE")
        token = mic = None
        for t, v in children(seq):
            if t == 0xA2:
                token = _octets(v)
            elif t == 0xA3:
                mic = _octets(v)
        return ClientToken([], b"", token, mic)
    raise DerError(f"unexpected token tag {tag:#x}")


def _octets(v: bytes) -> bytes:
    t, value, _ = read_tlv(v)
    if t != 0x04:
        raise DerError("expected an OCTET STRING")
    return value


def neg_token_resp(state: int | None, token: bytes | None = None, mic: bytes | None = None,
                   supported_mech: str | None = None) -> bytes:
    body = b""
    if state is not None:
        body += tlv(0xA0, tlv(0x0A, bytes([state])))
    if supported_mech is not None:
        body += tlv(0xA1, encode_oid(supported_mech))
    if token is not None:
        body += tlv(0xA2, tlv(0x04, token))
    if mic is not None:
        body += tlv(0xA3, tlv(0x04, mic))
    return tlv(0xA1, tlv(0x30, body))
