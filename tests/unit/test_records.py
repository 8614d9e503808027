"""The binary FileRecord encoding of the key-value stores, with its layout as a vector."""

from __future__ import annotations

import pytest

from dittofs.metadata import records
from dittofs.metadata.records import pack_record, unpack_record
from dittofs.metadata.types import FileRecord, FileType
from tests.support.vectors import hexv as h

REC = FileRecord(7, FileType.REG, 0o644, 1, 1000, 100, 4096, (0, 0), 1, 2, 3, 0, b"", None)
WIRE = h("""
    01                  version
    0000000000000007    fileid
    01                  ftype REG
    00                  no exclusive-create verifier
    000001a4            mode 0644
    00000001            nlink
    000003e8 00000064   uid 1000, gid 100
    0000000000001000    size 4096
    00000000 00000000   rdev
    0000000000000001 0000000000000002 0000000000000003   atime, mtime, ctime (ns)
    0000000000000000    parent
    0000000000000000    verifier (absent)
""")


def test_record_layout():
    assert pack_record(REC) == WIRE
    assert unpack_record(WIRE) == REC


def test_decoding_follows_the_bytes_not_an_earlier_decode():
    """Decoded records are reused by their bytes: a changed record must decode anew."""
    assert unpack_record(WIRE).size == 4096
    grown = pack_record(REC._replace(size=8192, mtime=9))
    assert unpack_record(grown).size == 8192 and unpack_record(grown).mtime == 9
    assert unpack_record(WIRE) == REC
    link = REC._replace(fileid=8, ftype=FileType.LNK, target=b"/some/where")
    assert unpack_record(pack_record(link)).target == b"/some/where"
    for i in range(records._DECODED_MAX + 10):  # the memo stays bounded
        unpack_record(pack_record(REC._replace(fileid=100 + i)))
    info = unpack_record.cache_info()
    assert info.maxsize == records._DECODED_MAX and info.currsize <= records._DECODED_MAX
    assert unpack_record(WIRE) == REC


def test_unknown_version_is_refused():
    with pytest.raises(ValueError):
        unpack_record(b"\x02" + WIRE[1:])
