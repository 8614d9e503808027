"""The SMB2 packet header (MS-SMB2 2.2.1) and direct-TCP framing (MS-SMB2 2.1), sans-IO."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from dittofs.bytequeue import ByteQueue

PROTOCOL_ID = b"\xfeSMB"
SMB1_PROTOCOL_ID = b"\xffSMB"
HEADER_SIZE = 64
_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")  # the sync form; async shares the layout
_LEN = struct.Struct(">I")
#: Largest SMB2 message we accept: an 8 MiB READ/WRITE plus headers.
DEFAULT_MAX_MESSAGE = 8 * 1024 * 1024 + 64 * 1024


class Command(enum.IntEnum):
    NEGOTIATE = 0x00
    SESSION_SETUP = 0x01
    LOGOFF = 0x02
    TREE_CONNECT = 0x03
    TREE_DISCONNECT = 0x04
    CREATE = 0x05
    CLOSE = 0x06
    FLUSH = 0x07
    READ = 0x08
    WRITE = 0x09
    LOCK = 0x0A
    IOCTL = 0x0B
    CANCEL = 0x0C
    ECHO = 0x0D
    QUERY_DIRECTORY = 0x0E
    CHANGE_NOTIFY = 0x0F
    QUERY_INFO = 0x10
    SET_INFO = 0x11
    OPLOCK_BREAK = 0x12


class Flags(enum.IntFlag):
    SERVER_TO_REDIR = 0x00000001
    ASYNC_COMMAND = 0x00000002
    RELATED_OPERATIONS = 0x00000004
    SIGNED = 0x00000008
    PRIORITY_MASK = 0x00000070
    DFS_OPERATIONS = 0x10000000
    REPLAY_OPERATION = 0x20000000


# Plain ints for the per-message tests: ``int & IntFlag`` builds a Flags member each time.
F_SERVER_TO_REDIR = int(Flags.SERVER_TO_REDIR)
F_ASYNC = int(Flags.ASYNC_COMMAND)
F_RELATED = int(Flags.RELATED_OPERATIONS)
F_SIGNED = int(Flags.SIGNED)


class HeaderError(ValueError):
    """Not a well-formed SMB2 header."""


@dataclass(frozen=True, slots=True)
class Header:
    """One SMB2 header.  ``tree_id`` is meaningful for sync messages and ``async_id`` for
    async ones (ASYNC_COMMAND set); they share bytes 32..39 on the wire."""

    command: int
    message_id: int
    credit_charge: int = 0
    status: int = 0  # ChannelSequence/Reserved in requests
    credits: int = 0  # CreditRequest in requests, CreditResponse in responses
    flags: int = 0
    next_command: int = 0
    tree_id: int = 0
    async_id: int = 0
    session_id: int = 0
    signature: bytes = bytes(16)

    @property
    def is_async(self) -> bool:
        return bool(self.flags & F_ASYNC)

    def pack(self) -> bytes:
        if self.is_async:
            low, high = self.async_id & 0xFFFFFFFF, self.async_id >> 32
        else:
            low, high = 0, self.tree_id
        return _HEADER.pack(PROTOCOL_ID, HEADER_SIZE, self.credit_charge, self.status,
                            self.command, self.credits, self.flags, self.next_command,
                            self.message_id, low, high, self.session_id, self.signature)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> "Header":
        if len(data) - offset < HEADER_SIZE:
            raise HeaderError(f"{len(data) - offset} bytes is shorter than a header")
        (pid, size, charge, status, command, credits, flags, next_command, message_id, low,
         high, session_id, signature) = _HEADER.unpack_from(data, offset)
        if pid != PROTOCOL_ID:
            raise HeaderError(f"protocol id {bytes(pid)!r}")
        if size != HEADER_SIZE:
            raise HeaderError(f"header StructureSize {size}")
        if flags & F_ASYNC:
            return cls(command, message_id, charge, status, credits, flags, next_command,
                       0, low | (high << 32), session_id, bytes(signature))
        return cls(command, message_id, charge, status, credits, flags, next_command, high, 0,
                   session_id, bytes(signature))


def split_compound(message: bytes) -> list[tuple[Header, bytes]]:
    """The requests chained in one message by NextCommand (MS-SMB2 3.2.4.1.4), each with
    its own bytes (header included).  Offsets must be 8-byte aligned and inside."""
    out = []
    off = 0
    while True:
        h = Header.unpack(message, off)
        if h.next_command:
            end = off + h.next_command
            if h.next_command % 8 or h.next_command < HEADER_SIZE or end > len(message):
                raise HeaderError(f"bad NextCommand {h.next_command} at {off}")
        else:
            end = len(message)
        out.append((h, message[off:end]))
        if not h.next_command:
            return out
        off = end


class FrameError(ValueError):
    """The stream breaks direct-TCP framing or our size limit; close the connection."""


class FrameReader:
    """Direct TCP transport: a zero byte and a 24-bit big-endian length, then the message."""

    __slots__ = ("max_message", "_q")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._q = ByteQueue()  # a message is copied out once, however many reads it took

    def feed(self, data: bytes) -> list[bytes]:
        q = self._q
        if not q and len(data) > 4:
            # The usual case: one whole message in one chunk, nothing held.
            word = _LEN.unpack_from(data, 0)[0]
            if word == len(data) - 4 and word <= self.max_message:  # (first byte zero)
                return [data[4:]]
        q.append(data)
        out = []
        while len(q) >= 4:
            word = _LEN.unpack_from(q.head(4), 0)[0]
            if word >> 24:
                raise FrameError(f"first byte of the frame header is {word >> 24:#x}")
            n = word & 0xFFFFFF
            if n > self.max_message:
                raise FrameError(f"message of {n} bytes exceeds {self.max_message}")
            if len(q) - 4 < n:
                break
            q.skip(4)
            out.append(q.take(n))
        return out


def frame(message: bytes) -> bytes:
    if len(message) > 0xFFFFFF:
        raise FrameError("message too large for direct TCP framing")
    return _LEN.pack(len(message)) + message


def frame_header(n: int) -> bytes:
    if n > 0xFFFFFF:
        raise FrameError("message too large for direct TCP framing")
    return _LEN.pack(n)
