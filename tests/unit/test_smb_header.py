"""SMB2 header (MS-SMB2 2.2.1.2) and direct-TCP framing (2.1), byte-exact and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dittofs.smb.header import (
    Command,
    Flags,
    FrameError,
    FrameReader,
    Header,
    HeaderError,
    frame,
    split_compound,
)
from tests.support.vectors import hexv

NEGOTIATE_HEADER = """
    fe534d42            ProtocolId
    4000                StructureSize 64
    0000                CreditCharge
    00000000            ChannelSequence/Reserved
    0000                Command NEGOTIATE
    1f00                CreditRequest 31
    00000000            Flags
    00000000            NextCommand
    0000000000000000    MessageId 0
    00000000            Reserved
    00000000            TreeId
    0000000000000000    SessionId
    00000000000000000000000000000000  Signature
"""

ASYNC_RESPONSE = """
    fe534d42 4000 0100  ProtocolId, StructureSize, CreditCharge 1
    03010000            Status STATUS_PENDING (0x00000103)
    0f00                Command CHANGE_NOTIFY
    0100                CreditResponse 1
    03000000            Flags SERVER_TO_REDIR and ASYNC_COMMAND
    00000000            NextCommand
    0700000000000000    MessageId 7
    0900000008000000    AsyncId 0x0000000800000009
    4444333322221111    SessionId
    00000000000000000000000000000000  Signature
"""


def test_negotiate_request_header():
    wire = hexv(NEGOTIATE_HEADER)
    h = Header(Command.NEGOTIATE, 0, credits=31)
    assert h.pack() == wire and len(wire) == 64
    assert Header.unpack(wire) == h


def test_async_response_header():
    wire = hexv(ASYNC_RESPONSE)
    h = Header.unpack(wire)
    assert h.is_async and h.async_id == 0x0000000800000009 and h.tree_id == 0
    assert h.status == 0x103 and h.command == Command.CHANGE_NOTIFY
    assert h.flags == Flags.SERVER_TO_REDIR | Flags.ASYNC_COMMAND
    assert h.session_id == 0x1111222233334444
    assert h.pack() == wire


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b[:63], "short"),
    (lambda b: b"\xffSMB" + b[4:], "protocol"),
    (lambda b: b[:4] + b"\x41\x00" + b[6:], "StructureSize"),
])
def test_bad_headers(mutate, reason):
    with pytest.raises(HeaderError):
        Header.unpack(mutate(hexv(NEGOTIATE_HEADER)))


def test_compound_split():
    first = Header(Command.CREATE, 1, next_command=72, flags=0).pack() + b"A" * 8
    second = Header(Command.READ, 2, flags=Flags.RELATED_OPERATIONS).pack() + b"B" * 5
    parts = split_compound(first + second)
    assert [(h.command, len(b)) for h, b in parts] == [(Command.CREATE, 72), (Command.READ, 69)]
    bad = Header(Command.CREATE, 1, next_command=70).pack() + b"A" * 80
    with pytest.raises(HeaderError):
        split_compound(bad)  # not 8-byte aligned
    beyond = Header(Command.CREATE, 1, next_command=800).pack() + b"A" * 8
    with pytest.raises(HeaderError):
        split_compound(beyond)


STREAM = frame(b"one") + frame(b"") + frame(b"three!")


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_framing_split_everywhere(cut):
    r = FrameReader()
    assert r.feed(STREAM[:cut]) + r.feed(STREAM[cut:]) == [b"one", b"", b"three!"]


def test_framing_byte_by_byte_and_limits():
    r = FrameReader()
    got = []
    for i in range(len(STREAM)):
        got += r.feed(STREAM[i:i + 1])
    assert got == [b"one", b"", b"three!"]
    assert frame(b"abc") == hexv("00000003 616263")
    with pytest.raises(FrameError):
        FrameReader(max_message=100).feed(hexv("00000065"))  # checked before any payload
    with pytest.raises(FrameError):
        FrameReader().feed(hexv("81000000"))  # a NetBIOS session message type we never use


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_our_errors(data):
    try:
        for msg in FrameReader(max_message=1 << 16).feed(data):
            split_compound(msg)
    except (FrameError, HeaderError):
        pass


def test_framing_of_whole_messages_in_one_chunk():
    assert FrameReader(max_message=3).feed(frame(b"abc")) == [b"abc"]
    with pytest.raises(FrameError):
        FrameReader(max_message=2).feed(frame(b"abc"))
    with pytest.raises(FrameError):  # a non-zero first byte is refused, whole or not
        FrameReader().feed(hexv("01000003 616263"))
    r = FrameReader()
    assert r.feed(frame(b"abc") + frame(b"de")) == [b"abc", b"de"]
    assert r.feed(hexv("00000004 6162")) == [] and r.feed(hexv("6364")) == [b"abcd"]
