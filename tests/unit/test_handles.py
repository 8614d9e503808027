from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dittofs.nfs.handles import HANDLE_SIZE, BadHandle, HandleCodec, share_id


def test_round_trip_and_size():
    codec = HandleCodec(b"k" * 32)
    h = codec.make(share_id("/export"), 12345)
    assert len(h) == HANDLE_SIZE <= 64
    assert codec.parse(h) == (share_id("/export"), 12345)


def test_handles_differ_per_share_and_key():
    a = HandleCodec(b"a" * 32)
    b = HandleCodec(b"b" * 32)
    assert a.make(1, 5) != a.make(2, 5)
    with pytest.raises(BadHandle):
        b.parse(a.make(1, 5))  # another server's (or a rotated key's) handle


def test_every_flipped_bit_is_detected():
    codec = HandleCodec(b"k" * 32)
    h = codec.make(7, 99)
    for i in range(len(h) * 8):
        forged = bytearray(h)
        forged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(BadHandle):
            codec.parse(bytes(forged))


@given(st.binary(max_size=64))
def test_random_handles_are_refused(blob):
    codec = HandleCodec(b"k" * 32)
    with pytest.raises(BadHandle):
        codec.parse(blob)


def test_short_keys_are_refused():
    with pytest.raises(ValueError):
        HandleCodec(b"short")
