"""RPC record marking (RFC 5531 section 11): fed whole, byte by byte and split everywhere."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dittofs.rpc.record import RecordError, RecordReader, frame, frame_bytes

H = bytes.fromhex

# Two records: "abc" in one last fragment; "hello world" as "hello " + "world" fragments.
STREAM = H(
    "80000003" "616263"                 # last fragment, 3 bytes
    "00000006" "68656c6c6f20"           # fragment, 6 bytes, more follow
    "80000005" "776f726c64"             # last fragment, 5 bytes
)
RECORDS = [b"abc", b"hello world"]


def feed_all(reader, pieces):
    out = []
    for p in pieces:
        out += reader.feed(p)
    return out


def test_whole():
    assert feed_all(RecordReader(), [STREAM]) == RECORDS


def test_byte_by_byte():
    r = RecordReader()
    assert feed_all(r, [STREAM[i:i + 1] for i in range(len(STREAM))]) == RECORDS
    assert r.buffered() == 0


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_offset(cut):
    assert feed_all(RecordReader(), [STREAM[:cut], STREAM[cut:]]) == RECORDS


def test_frame_vectors():
    assert frame_bytes(b"abc") == H("80000003616263")
    assert b"".join(frame([b"ab", b"c"])) == H("80000003616263")
    assert frame_bytes(b"") == H("80000000")


def test_limit_is_checked_at_the_marker():
    r = RecordReader(max_record=1000)
    with pytest.raises(RecordError):
        r.feed(struct.pack(">I", 0x80000000 | 1001))  # no payload sent yet
    with pytest.raises(RecordError):
        RecordReader().feed(struct.pack(">I", 0x7FFFFFFF))
    r = RecordReader(max_record=1000)
    r.feed(struct.pack(">I", 600) + b"x" * 600)
    with pytest.raises(RecordError):
        r.feed(struct.pack(">I", 0x80000000 | 500))  # fragments add up past the limit


def test_a_whole_record_in_one_chunk_is_still_held_to_the_limit():
    assert RecordReader(max_record=11).feed(frame_bytes(b"x" * 11)) == [b"x" * 11]
    with pytest.raises(RecordError):
        RecordReader(max_record=10).feed(frame_bytes(b"x" * 11))
    r = RecordReader()
    assert r.feed(frame_bytes(b"one") + frame_bytes(b"two")) == [b"one", b"two"]
    assert r.feed(H("00000002") + b"ab") == [] and r.feed(frame_bytes(b"c")) == [b"abc"]


def test_empty_non_final_fragment_is_refused():
    with pytest.raises(RecordError):
        RecordReader().feed(H("00000000"))


def test_empty_final_fragment_is_an_empty_record():
    assert RecordReader().feed(H("80000000")) == [b""]


@given(st.lists(st.binary(max_size=300), max_size=8), st.data())
def test_round_trip_random_records_and_splits(records, data):
    wire = b"".join(frame_bytes(r) for r in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert feed_all(RecordReader(), pieces) == records


@given(st.binary(max_size=500))
def test_random_input_raises_only_record_error(data):
    try:
        RecordReader(max_record=4096).feed(data)
    except RecordError:
        pass
