"""XDR primitives and combinators (RFC 4506), byte-exact in both directions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dittofs.rpc import xdr
from dittofs.rpc.xdr import (
    BOOL,
    I32,
    U32,
    U64,
    VOID,
    Array,
    FixedOpaque,
    LinkedList,
    Opaque,
    Optional,
    String,
    Union,
    XdrError,
    decode,
    encode,
    struct_type,
)

H = bytes.fromhex

VECTORS = [
    (U32, 1, "00000001"),
    (U32, 0xDEADBEEF, "deadbeef"),
    (I32, -1, "ffffffff"),
    (I32, -2, "fffffffe"),
    (U64, 2**40 + 5, "0000010000000005"),
    (BOOL, True, "00000001"),
    (BOOL, False, "00000000"),
    (Opaque(), b"", "00000000"),
    (Opaque(), b"abc", "00000003 61626300"),
    (Opaque(), b"abcd", "00000004 61626364"),
    (String(255), b"hello", "00000005 68656c6c6f000000"),
    (FixedOpaque(8), b"12345678", "3132333435363738"),
    (FixedOpaque(3), b"xyz", "78797a00"),
    (Optional(U32), None, "00000000"),
    (Optional(U32), 7, "00000001 00000007"),
    (Array(U32, 4), [1, 2], "00000002 00000001 00000002"),
    (LinkedList(U32), [1, 2], "00000001 00000001 00000001 00000002 00000000"),
    (LinkedList(U32), [], "00000000"),
]


@pytest.mark.parametrize("t,value,hexstr", VECTORS)
def test_vectors(t, value, hexstr):
    wire = H(hexstr.replace(" ", ""))
    assert encode(t, value) == wire
    got = decode(t, wire)
    assert got == value or (isinstance(got, list) and list(got) == list(value))


Pair, PAIR_T = struct_type("Pair", [("a", U32), ("b", U64)])
Mixed, MIXED_T = struct_type("Mixed", [("n", U32), ("name", String(16))])


def test_fixed_structs_fuse_into_one_format():
    assert PAIR_T.fmt == "IQ"
    assert MIXED_T.fmt is None
    assert encode(PAIR_T, Pair(1, 2)) == H("00000001 0000000000000002".replace(" ", ""))
    assert decode(PAIR_T, H("000000090000000000000003")) == Pair(9, 3)
    assert decode(MIXED_T, H("00000001000000026869 0000".replace(" ", ""))) == Mixed(1, b"hi")


def test_union_arms_and_default():
    u = Union(U32, {0: U32}, VOID)
    assert encode(u, (0, 5)) == H("0000000000000005")
    assert encode(u, (3, None)) == H("00000003")
    assert decode(u, H("0000000000000005")) == (0, 5)
    assert decode(u, H("00000009")) == (9, None)
    strict = Union(U32, {0: U32})
    with pytest.raises(XdrError):
        decode(strict, H("00000001"))


@pytest.mark.parametrize("t,wire", [
    (U32, "000000"),
    (U64, "00000000000000"),
    (BOOL, "00000002"),
    (Opaque(4), "00000005 0000000000000000"),
    (Opaque(), "00000008 0000"),
    (String(10), "00000003 6162"),
    (FixedOpaque(8), "00"),
    (PAIR_T, "00000001"),
    (Array(U32, 2), "00000003 00000000 00000000 00000000"),
    (Array(U32), "7fffffff"),
])
def test_malformed_raise_xdr_error(t, wire):
    with pytest.raises(XdrError):
        decode(t, H(wire.replace(" ", "")))


def test_trailing_bytes_are_an_error_only_when_exact():
    with pytest.raises(XdrError):
        decode(U32, H("0000000100"))
    assert decode(U32, H("0000000100"), exact=False) == 1


def test_encode_range_errors():
    with pytest.raises(XdrError):
        encode(U32, -1)
    with pytest.raises(XdrError):
        encode(Opaque(2), b"abc")
    with pytest.raises(XdrError):
        encode(FixedOpaque(8), b"short")


def test_large_opaque_is_a_separate_chunk_without_copy():
    data = bytes(range(256)) * 64  # 16 KiB
    p = xdr.Packer()
    U32.pack(p, 7)
    Opaque().pack(p, data)
    U32.pack(p, 9)
    chunks = p.chunks()
    assert any(c is data for c in chunks)
    assert b"".join(chunks) == H("00000007 00004000".replace(" ", "")) + data + H("00000009")


def test_view_opaque_decodes_to_memoryview():
    mv = decode(Opaque(view=True), H("00000002 41420000".replace(" ", "")))
    assert isinstance(mv, memoryview) and mv.tobytes() == b"AB"


TYPES = [U32, U64, I32, BOOL, Opaque(64), String(300), FixedOpaque(8), Optional(U64),
         Array(U32, 10), LinkedList(String(20)), PAIR_T, MIXED_T,
         Union(U32, {0: PAIR_T, 1: String(9)}, VOID)]


@given(st.sampled_from(TYPES), st.binary(max_size=200))
def test_random_bytes_raise_only_xdr_error(t, data):
    try:
        decode(t, data, exact=False)
    except XdrError:
        pass


@given(st.binary(max_size=300), st.integers(0, 2**64 - 1), st.lists(st.binary(max_size=20),
                                                                    max_size=10))
def test_round_trips(blob, n, names):
    assert decode(Opaque(), encode(Opaque(), blob)) == blob
    assert decode(U64, encode(U64, n)) == n
    assert decode(LinkedList(String(20)), encode(LinkedList(String(20)), names)) == names
