"""SMB2 command bodies (MS-SMB2 2.2.3-2.2.40): request parsers and response builders.

A request parser takes the whole message (header included, so that offsets in the
body are taken from the start of the header as the spec defines them) and returns a
NamedTuple; it raises ``BadRequest`` when StructureSize, offsets or lengths are wrong.
Response builders return the body bytes that follow the 64-byte header.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HDR = 64
UNUSED_FILE_ID = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


class BadRequest(ValueError):
    """A request body that does not match its command's layout."""


def _buf(msg: bytes, off: int, n: int, what: str) -> bytes:
    if n == 0:
        return b""
    if off < HDR or off + n > len(msg):
        raise BadRequest(f"{what}: offset {off} length {n} outside a {len(msg)}-byte message")
    return msg[off:off + n]


def _fixed(msg: bytes, st: struct.Struct, size: int, what: str) -> tuple:
    if len(msg) < HDR + st.size:
        raise BadRequest(f"{what}: body of {len(msg) - HDR} bytes is too short")
    vals = st.unpack_from(msg, HDR)
    if vals[0] != size:
        raise BadRequest(f"{what}: StructureSize {vals[0]}, expected {size}")
    return vals


def error_body(data: bytes = b"") -> bytes:
    """SMB2 ERROR Response (2.2.2): StructureSize 9 and at least one byte."""
    return struct.pack("<HBBI", 9, 0, 0, len(data)) + (data or b"\x00")


# -- NEGOTIATE ---------------------------------------------------------------------

_NEG_REQ = struct.Struct("<HHHHI16sIHH")


class NegotiateRequest(NamedTuple):
    security_mode: int
    capabilities: int
    client_guid: bytes
    dialects: list[int]
    contexts: list[tuple[int, bytes]]


def parse_negotiate(msg: bytes) -> NegotiateRequest:
    (_, count, secmode, _, caps, guid, ctx_off, ctx_count, _) = _fixed(msg, _NEG_REQ, 36,
                                                                       "NEGOTIATE")
    end = HDR + 36 + 2 * count
    if count == 0 or end > len(msg):
        raise BadRequest("NEGOTIATE: dialect list")
    dialects = list(struct.unpack_from(f"<{count}H", msg, HDR + 36))
    contexts = []
    if 0x0311 in dialects and ctx_count:
        off = ctx_off
        for _ in range(ctx_count):
            off = (off + 7) & ~7
            if off + 8 > len(msg):
                raise BadRequest("NEGOTIATE: context outside the message")
            ctype, n = struct.unpack_from("<HH", msg, off)
            contexts.append((ctype, _buf(msg, off + 8, n, "negotiate context")))
            off += 8 + n
    return NegotiateRequest(secmode, caps, guid, dialects, contexts)


_NEG_RESP = struct.Struct("<HHHH16sIIIIQQHHI")


def negotiate_response(security_mode: int, dialect: int, server_guid: bytes, capabilities: int,
                       max_transact: int, max_read: int, max_write: int, system_time: int,
                       token: bytes, contexts: list[tuple[int, bytes]]) -> bytes:
    sec_off = HDR + _NEG_RESP.size
    body_len = _NEG_RESP.size + len(token)
    ctx_off = 0
    tail = b""
    if contexts:
        pad = (-(HDR + body_len)) & 7
        ctx_off = HDR + body_len + pad
        parts = []
        for i, (ctype, data) in enumerate(contexts):
            part = struct.pack("<HHI", ctype, len(data), 0) + data
            if i < len(contexts) - 1:
                part += bytes(-len(part) & 7)
            parts.append(part)
        tail = bytes(pad) + b"".join(parts)
    head = _NEG_RESP.pack(65, security_mode, dialect, len(contexts), server_guid, capabilities,
                          max_transact, max_read, max_write, system_time, 0, sec_off,
                          len(token), ctx_off)
    return head + token + tail


# -- SESSION_SETUP -------------------------------------------------------------------

_SS_REQ = struct.Struct("<HBBIIHHQ")


class SessionSetupRequest(NamedTuple):
    flags: int
    security_mode: int
    capabilities: int
    previous_session_id: int
    token: bytes


def parse_session_setup(msg: bytes) -> SessionSetupRequest:
    (_, flags, secmode, caps, _, off, n, prev) = _fixed(msg, _SS_REQ, 25, "SESSION_SETUP")
    return SessionSetupRequest(flags, secmode, caps, prev, _buf(msg, off, n, "security buffer"))


def session_setup_response(session_flags: int, token: bytes) -> bytes:
    return struct.pack("<HHHH", 9, session_flags, HDR + 8, len(token)) + token


def simple_response() -> bytes:
    """LOGOFF, TREE_DISCONNECT, ECHO, FLUSH, LOCK: StructureSize 4 and a reserved word."""
    return b"\x04\x00\x00\x00"


def parse_simple(msg: bytes, what: str) -> None:
    if len(msg) < HDR + 4 or struct.unpack_from("<H", msg, HDR)[0] != 4:
        raise BadRequest(f"{what}: StructureSize")


# -- TREE_CONNECT ------------------------------------------------------------------


_TREE_REQ = struct.Struct("<HHHH")


def parse_tree_connect(msg: bytes) -> str:
    (_, _, off, n) = _fixed(msg, _TREE_REQ, 9, "TREE_CONNECT")
    return _buf(msg, off, n, "path").decode("utf-16-le", "replace")


def tree_connect_response(share_type: int, share_flags: int, capabilities: int,
                          maximal_access: int) -> bytes:
    return struct.pack("<HBBIII", 16, share_type, 0, share_flags, capabilities, maximal_access)


# -- CREATE -----------------------------------------------------------------------

_CREATE_REQ = struct.Struct("<HBBIQQIIIIIHHII")


class CreateRequest(NamedTuple):
    oplock: int
    desired_access: int
    file_attributes: int
    share_access: int
    disposition: int
    options: int
    name: str
    contexts: dict[bytes, bytes]


def parse_create_contexts(data: bytes) -> dict[bytes, bytes]:
    out = {}
    off = 0
    while True:
        if off + 16 > len(data):
            raise BadRequest("create context truncated")
        nxt, name_off, name_len, _, data_off, data_len = struct.unpack_from("<IHHHHI", data, off)
        name = data[off + name_off:off + name_off + name_len]
        value = data[off + data_off:off + data_off + data_len] if data_len else b""
        if len(name) != name_len or len(value) != data_len:
            raise BadRequest("create context outside its buffer")
        out[bytes(name)] = bytes(value)
        if not nxt:
            return out
        if nxt % 8 or nxt < 16:
            raise BadRequest("create context Next")
        off += nxt


def parse_create(msg: bytes) -> CreateRequest:
    (_, _, oplock, _, _, _, access, attrs, share, disp, opts, name_off, name_len, ctx_off,
     ctx_len) = _fixed(msg, _CREATE_REQ, 57, "CREATE")
    if name_len % 2:
        raise BadRequest("CREATE: odd name length")
    name = _buf(msg, name_off, name_len, "name").decode("utf-16-le", "surrogatepass")
    contexts = parse_create_contexts(_buf(msg, ctx_off, ctx_len, "contexts")) if ctx_len else {}
    return CreateRequest(oplock, access, attrs, share, disp, opts, name, contexts)


def create_contexts(items: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray()
    for i, (name, data) in enumerate(items):
        data_off = (16 + len(name) + 7) & ~7
        entry = bytearray(struct.pack("<IHHHHI", 0, 16, len(name), 0,
                                      data_off if data else 0, len(data)))
        entry += name
        entry += bytes(data_off - len(entry)) + data
        if i < len(items) - 1:
            entry += bytes(-len(entry) & 7)
            struct.pack_into("<I", entry, 0, len(entry))
        out += entry
    return bytes(out)


_CREATE_RESP = struct.Struct("<HBBIQQQQQQII16sII")


def create_response(action: int, times: tuple[int, int, int, int], alloc: int, eof: int,
                    attrs: int, file_id: bytes, contexts: bytes) -> bytes:
    ctx_off = HDR + _CREATE_RESP.size if contexts else 0
    return _CREATE_RESP.pack(89, 0, 0, action, *times, alloc, eof, attrs, 0, file_id, ctx_off,
                             len(contexts)) + contexts


# -- CLOSE / FLUSH -------------------------------------------------------------------


_FILE_ID_REQ = struct.Struct("<HHI16s")  # CLOSE, FLUSH and LOCK begin alike


def parse_close(msg: bytes) -> tuple[int, bytes]:
    (_, flags, _, fid) = _fixed(msg, _FILE_ID_REQ, 24, "CLOSE")
    return flags, fid


_CLOSE_RESP = struct.Struct("<HHIQQQQQQI")


def close_response(flags: int, times: tuple[int, int, int, int] | None = None, alloc: int = 0,
                   eof: int = 0, attrs: int = 0) -> bytes:
    return _CLOSE_RESP.pack(60, flags, 0, *(times or (0, 0, 0, 0)), alloc, eof, attrs)


def parse_flush(msg: bytes) -> bytes:
    (_, _, _, fid) = _fixed(msg, _FILE_ID_REQ, 24, "FLUSH")
    return fid


# -- READ / WRITE --------------------------------------------------------------------

_READ_REQ = struct.Struct("<HBBIQ16sIIIHH")


class ReadRequest(NamedTuple):
    length: int
    offset: int
    file_id: bytes
    minimum: int


def parse_read(msg: bytes) -> ReadRequest:
    (_, _, _, length, offset, fid, minimum, _, _, _, _) = _fixed(msg, _READ_REQ, 49, "READ")
    return ReadRequest(length, offset, fid, minimum)


def read_response_head(n: int) -> bytes:
    """The READ response body before its data (DataOffset = header + 16)."""
    return struct.pack("<HBBIII", 17, HDR + 16, 0, n, 0, 0)


_WRITE_REQ = struct.Struct("<HHIQ16sIIHHI")


class WriteRequest(NamedTuple):
    offset: int
    file_id: bytes
    flags: int
    data: memoryview


def parse_write(msg: bytes) -> WriteRequest:
    (_, data_off, length, offset, fid, _, _, _, _, flags) = _fixed(msg, _WRITE_REQ, 49, "WRITE")
    if length and (data_off < HDR or data_off + length > len(msg)):
        raise BadRequest("WRITE: data outside the message")
    return WriteRequest(offset, fid, flags, memoryview(msg)[data_off:data_off + length])


def write_response(count: int) -> bytes:
    return struct.pack("<HHIIHH", 17, 0, count, 0, 0, 0)


# -- LOCK -------------------------------------------------------------------------

LOCK_SHARED, LOCK_EXCLUSIVE, LOCK_UNLOCK, LOCK_FAIL_IMMEDIATELY = 1, 2, 4, 0x10


def parse_lock(msg: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
    (_, count, _, fid) = _fixed(msg, _FILE_ID_REQ, 48, "LOCK")
    if count == 0 or HDR + 24 + 24 * count > len(msg):
        raise BadRequest("LOCK: lock count")
    locks = [struct.unpack_from("<QQI", msg, HDR + 24 + 24 * i) for i in range(count)]
    return fid, locks


# -- IOCTL ------------------------------------------------------------------------

_IOCTL_REQ = struct.Struct("<HHI16sIIIIIIII")


class IoctlRequest(NamedTuple):
    ctl_code: int
    file_id: bytes
    input: bytes
    max_output: int
    flags: int


def parse_ioctl(msg: bytes) -> IoctlRequest:
    (_, _, code, fid, in_off, in_n, _, _, _, max_out, flags, _) = _fixed(msg, _IOCTL_REQ, 57,
                                                                         "IOCTL")
    return IoctlRequest(code, fid, _buf(msg, in_off, in_n, "ioctl input"), max_out, flags)


def ioctl_response(code: int, file_id: bytes, output: bytes) -> bytes:
    off = HDR + 48
    return struct.pack("<HHI16sIIIIII", 49, 0, code, file_id, off, 0, off, len(output), 0,
                       0) + output


# -- QUERY_DIRECTORY ---------------------------------------------------------------

RESTART_SCANS, RETURN_SINGLE_ENTRY, INDEX_SPECIFIED, REOPEN = 1, 2, 4, 0x10


class QueryDirectoryRequest(NamedTuple):
    info_class: int
    flags: int
    file_id: bytes
    pattern: str
    output_length: int


_QUERY_DIR_REQ = struct.Struct("<HBBI16sHHI")


def parse_query_directory(msg: bytes) -> QueryDirectoryRequest:
    (_, cls, flags, _, fid, off, n, out_len) = _fixed(msg, _QUERY_DIR_REQ, 33,
                                                      "QUERY_DIRECTORY")
    pattern = _buf(msg, off, n, "pattern").decode("utf-16-le", "surrogatepass")
    return QueryDirectoryRequest(cls, flags, fid, pattern, out_len)


def buffer_response(data: bytes) -> bytes:
    """QUERY_DIRECTORY, QUERY_INFO and CHANGE_NOTIFY: StructureSize 9, offset, length."""
    return struct.pack("<HHI", 9, HDR + 8 if data else 0, len(data)) + (data or b"\x00")


# -- QUERY_INFO / SET_INFO ---------------------------------------------------------

INFO_FILE, INFO_FILESYSTEM, INFO_SECURITY, INFO_QUOTA = 1, 2, 3, 4


class QueryInfoRequest(NamedTuple):
    info_type: int
    info_class: int
    output_length: int
    additional: int
    flags: int
    file_id: bytes
    input: bytes


_QUERY_INFO_REQ = struct.Struct("<HBBIHHIII16s")


def parse_query_info(msg: bytes) -> QueryInfoRequest:
    (_, itype, cls, out_len, in_off, _, in_n, addl, flags, fid) = _fixed(
        msg, _QUERY_INFO_REQ, 41, "QUERY_INFO")
    return QueryInfoRequest(itype, cls, out_len, addl, flags, fid,
                            _buf(msg, in_off, in_n, "input"))


class SetInfoRequest(NamedTuple):
    info_type: int
    info_class: int
    additional: int
    file_id: bytes
    data: bytes


_SET_INFO_REQ = struct.Struct("<HBBIHHI16s")


def parse_set_info(msg: bytes) -> SetInfoRequest:
    (_, itype, cls, n, off, _, addl, fid) = _fixed(msg, _SET_INFO_REQ, 33, "SET_INFO")
    return SetInfoRequest(itype, cls, addl, fid, _buf(msg, off, n, "buffer"))


def set_info_response() -> bytes:
    return b"\x02\x00"


# -- CHANGE_NOTIFY / CANCEL / OPLOCK_BREAK ----------------------------------------

WATCH_TREE = 1


class ChangeNotifyRequest(NamedTuple):
    flags: int
    output_length: int
    file_id: bytes
    completion_filter: int


_NOTIFY_REQ = struct.Struct("<HHI16sII")


def parse_change_notify(msg: bytes) -> ChangeNotifyRequest:
    (_, flags, out_len, fid, filt, _) = _fixed(msg, _NOTIFY_REQ, 32, "CHANGE_NOTIFY")
    return ChangeNotifyRequest(flags, out_len, fid, filt)
