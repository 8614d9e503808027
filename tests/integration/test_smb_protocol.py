"""The real server driven by the smbprotocol package, for what smbclient does not reach:
information classes, byte-range locks, change notify, compound requests, share modes."""

from __future__ import annotations

import struct
import threading
import time

import pytest
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.header import NtStatus
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FileInformationClass,
    SMB2CloseRequest,
    SMB2LockElement,
    SMB2QueryInfoRequest,
    SMB2QueryInfoResponse,
)

from tests.integration.conftest import needs_libnfs
from tests.support.smb import open_file, smb_tree

pytestmark = pytest.mark.integration

# MS-SMB2 2.2.37: info types; MS-FSCC 2.4/2.5 classes
INFO_FILE, INFO_FS, INFO_SECURITY = 1, 2, 3
STATUS_LOCK_NOT_GRANTED = 0xC0000055
STATUS_SHARING_VIOLATION = 0xC0000043
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_FILE_LOCK_CONFLICT = 0xC0000054


def query(conn, session, tree, op, info_type: int, cls: int, length: int = 4096,
          additional: int = 0) -> bytes:
    req = SMB2QueryInfoRequest()
    req["info_type"] = info_type
    req["file_info_class"] = cls
    req["output_buffer_length"] = length
    req["additional_information"] = additional
    req["file_id"] = op.file_id
    request = conn.send(req, session.session_id, tree.tree_connect_id)
    resp = SMB2QueryInfoResponse()
    resp.unpack(conn.receive(request)["data"].get_value())
    return resp["buffer"].get_value()


def status_of(excinfo) -> int:
    return excinfo.value.status


def test_file_information_classes(server):
    with smb_tree(server) as (conn, session, tree):
        op = open_file(tree, "info.bin", CreateDisposition.FILE_OVERWRITE_IF)
        op.write(b"x" * 5000, 0)
        basic = query(conn, session, tree, op, INFO_FILE, 4)
        assert len(basic) == 40
        ctime, atime, mtime, chtime, attrs = struct.unpack_from("<QQQQI", basic)
        now_ft = int(time.time() * 1e7) + 116444736000000000
        assert abs(mtime - now_ft) < 10 * 10**7 and attrs & 0x20  # ARCHIVE, written just now
        std = query(conn, session, tree, op, INFO_FILE, 5)
        alloc, eof, nlink, delete_pending, is_dir = struct.unpack_from("<QQIBB", std)
        assert (eof, nlink, delete_pending, is_dir) == (5000, 1, 0, 0) and alloc >= 5000
        internal = struct.unpack("<Q", query(conn, session, tree, op, INFO_FILE, 6))[0]
        assert internal > 0
        all_info = query(conn, session, tree, op, INFO_FILE, 18)
        assert all_info[:40] == basic
        assert struct.unpack_from("<Q", all_info, 64)[0] == internal
        name_len = struct.unpack_from("<I", all_info, 96)[0]
        assert all_info[100:100 + name_len].decode("utf-16-le") == "\\info.bin"
        netopen = query(conn, session, tree, op, INFO_FILE, 34)
        assert struct.unpack_from("<Q", netopen, 40)[0] == 5000
        tag = query(conn, session, tree, op, INFO_FILE, 35)
        assert struct.unpack("<II", tag) == (attrs, 0)
        stream = query(conn, session, tree, op, INFO_FILE, 22)
        n = struct.unpack_from("<I", stream, 4)[0]
        assert stream[24:24 + n].decode("utf-16-le") == "::$DATA"
        assert struct.unpack_from("<Q", stream, 8)[0] == 5000
        # a buffer too small for the fixed part is INFO_LENGTH_MISMATCH
        with pytest.raises(SMBResponseException) as e:
            query(conn, session, tree, op, INFO_FILE, 4, length=8)
        assert status_of(e) == NtStatus.STATUS_INFO_LENGTH_MISMATCH
        # the variable part is truncated with BUFFER_OVERFLOW
        with pytest.raises(SMBResponseException) as e:
            query(conn, session, tree, op, INFO_FILE, 18, length=104)
        assert status_of(e) == NtStatus.STATUS_BUFFER_OVERFLOW
        op.close()


def test_filesystem_and_security_information(server):
    with smb_tree(server) as (conn, session, tree):
        op = open_file(tree, "", directory=True)
        size = query(conn, session, tree, op, INFO_FS, 3)
        total, avail, spu, bps = struct.unpack("<QQII", size)
        assert total >= avail > 0 and spu * bps == 4096
        full = query(conn, session, tree, op, INFO_FS, 7)
        assert struct.unpack_from("<Q", full)[0] == total
        attr = query(conn, session, tree, op, INFO_FS, 5)
        n = struct.unpack_from("<I", attr, 8)[0]
        assert attr[12:12 + n].decode("utf-16-le") == "NTFS"
        assert struct.unpack_from("<I", attr, 4)[0] == 255
        volume = query(conn, session, tree, op, INFO_FS, 1)
        n = struct.unpack_from("<I", volume, 12)[0]
        assert volume[18:18 + n].decode("utf-16-le") == "export"
        device = query(conn, session, tree, op, INFO_FS, 4)
        assert struct.unpack("<II", device)[0] == 7  # FILE_DEVICE_DISK
        op.close()
        f = open_file(tree, "owned.txt", CreateDisposition.FILE_OVERWRITE_IF)
        sd = query(conn, session, tree, f, INFO_SECURITY, 0, additional=0x7)
        rev, _, control, o_owner, o_group, _, o_dacl = struct.unpack_from("<BBHIIII", sd)
        assert rev == 1 and control & 0x8004 == 0x8004
        # alice is uid 1000 / gid 1000: S-1-22-1-1000 and S-1-22-2-1000
        assert sd[o_owner:o_owner + 16] == struct.pack("<BB6sII", 1, 2, (22).to_bytes(6, "big"),
                                                       1, 1000)
        assert sd[o_group:o_group + 16] == struct.pack("<BB6sII", 1, 2, (22).to_bytes(6, "big"),
                                                       2, 1000)
        assert struct.unpack_from("<H", sd, o_dacl + 4)[0] == 3  # owner, group, everyone
        with pytest.raises(SMBResponseException) as e:
            query(conn, session, tree, f, INFO_SECURITY, 0, length=16, additional=0x7)
        assert status_of(e) == NtStatus.STATUS_BUFFER_TOO_SMALL
        f.close()


def test_directory_listing_classes_and_patterns(server):
    with smb_tree(server) as (conn, session, tree):
        d = open_file(tree, "listing", directory=True)
        names = [f"file{i:03d}.txt" for i in range(300)] + ["other.dat"]
        for name in names:
            open_file(tree, f"listing\\{name}", CreateDisposition.FILE_CREATE).close()
        for cls in (FileInformationClass.FILE_DIRECTORY_INFORMATION,
                    FileInformationClass.FILE_FULL_DIRECTORY_INFORMATION,
                    FileInformationClass.FILE_BOTH_DIRECTORY_INFORMATION,
                    FileInformationClass.FILE_ID_BOTH_DIRECTORY_INFORMATION,
                    FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION,
                    FileInformationClass.FILE_NAMES_INFORMATION):
            seen = []
            entries = d.query_directory("*", cls, flags=1, max_output=4096)
            while True:
                seen += [e["file_name"].get_value().decode("utf-16-le") for e in entries]
                try:
                    entries = d.query_directory("*", cls, max_output=4096)
                except SMBResponseException as e:
                    assert e.status == NtStatus.STATUS_NO_MORE_FILES
                    break
            assert sorted(seen) == sorted([".", ".."] + names), cls
        got = d.query_directory("file1?5.txt", FileInformationClass.FILE_NAMES_INFORMATION,
                                flags=1)
        assert sorted(e["file_name"].get_value().decode("utf-16-le") for e in got) == [
            f"file1{i}5.txt" for i in range(10)]
        got = d.query_directory("*.DAT", FileInformationClass.FILE_NAMES_INFORMATION, flags=1)
        assert [e["file_name"].get_value().decode("utf-16-le") for e in got] == ["other.dat"]
        single = d.query_directory("*", FileInformationClass.FILE_NAMES_INFORMATION, flags=3)
        assert len(single) == 1
        with pytest.raises(SMBResponseException) as e:
            d.query_directory("nothing-*", FileInformationClass.FILE_NAMES_INFORMATION, flags=1)
        assert status_of(e) == NtStatus.STATUS_NO_SUCH_FILE
        d.close()


def test_byte_range_locks(server):
    with smb_tree(server) as (conn, session, tree):
        a = open_file(tree, "locked.bin", CreateDisposition.FILE_OVERWRITE_IF)
        a.write(b"\0" * 4096, 0)
        b = open_file(tree, "locked.bin")

        def element(offset, length, flags):
            e = SMB2LockElement()
            e["offset"], e["length"], e["flags"] = offset, length, flags
            return e

        a.lock([element(0, 100, 0x2 | 0x10)])  # exclusive, fail immediately
        with pytest.raises(SMBResponseException) as e:
            b.lock([element(50, 10, 0x1 | 0x10)])
        assert status_of(e) == STATUS_LOCK_NOT_GRANTED
        b.lock([element(100, 10, 0x1 | 0x10)])  # adjacent range: granted
        with pytest.raises(SMBResponseException) as e:
            b.write(b"y", 10)
        assert status_of(e) == STATUS_FILE_LOCK_CONFLICT
        # A blocking lock waits (STATUS_PENDING) until the holder unlocks.
        done = threading.Event()
        result = []

        def wait_lock():
            try:
                b.lock([element(0, 10, 0x2)])
                result.append("granted")
            except Exception as exc:  # pragma: no cover - reported by the assertion
                result.append(exc)
            done.set()

        t = threading.Thread(target=wait_lock)
        t.start()
        assert not done.wait(0.5), "the conflicting lock was granted while held"
        a.lock([element(0, 100, 0x4)])  # unlock
        assert done.wait(10) and result == ["granted"]
        t.join()
        with pytest.raises(SMBResponseException) as e:
            a.lock([element(0, 100, 0x4)])  # not locked any more
        assert status_of(e) == 0xC000007E  # RANGE_NOT_LOCKED
        b.close()
        a.close()


def test_share_modes_and_delete_on_close(server):
    with smb_tree(server) as (conn, session, tree):
        a = open_file(tree, "exclusive.txt", CreateDisposition.FILE_OVERWRITE_IF, share_access=0)
        with pytest.raises(SMBResponseException) as e:
            open_file(tree, "exclusive.txt")
        assert status_of(e) == STATUS_SHARING_VIOLATION
        a.close()
        open_file(tree, "exclusive.txt").close()
        doomed = open_file(tree, "doomed.txt", CreateDisposition.FILE_CREATE,
                           access=0x0012019F | 0x10000,
                           options=CreateOptions.FILE_DELETE_ON_CLOSE)
        doomed.write(b"gone soon", 0)
        doomed.close()
        with pytest.raises(SMBResponseException) as e:
            open_file(tree, "doomed.txt", CreateDisposition.FILE_OPEN)
        assert status_of(e) == STATUS_OBJECT_NAME_NOT_FOUND
        root = open_file(tree, "", CreateDisposition.FILE_OPEN, directory=True)
        root.flush()  # the directory: makes the create and the delete above durable
        root.close()


def test_compound_related_requests(server):
    """CREATE + QUERY_INFO + CLOSE chained as related operations in one message."""
    from smbprotocol.open import Open
    with smb_tree(server) as (conn, session, tree):
        f = open_file(tree, "compound.txt", CreateDisposition.FILE_OVERWRITE_IF)
        f.write(b"0123456789", 0)
        f.close()
        op = Open(tree, "compound.txt")
        create, create_recv = op.create(2, 0x00120089, 0x80, 7, CreateDisposition.FILE_OPEN,
                                        CreateOptions.FILE_NON_DIRECTORY_FILE, send=False)
        q = SMB2QueryInfoRequest()
        q["info_type"] = INFO_FILE
        q["file_info_class"] = 5
        q["output_buffer_length"] = 1024
        q["file_id"] = b"\xff" * 16
        close = SMB2CloseRequest()
        close["file_id"] = b"\xff" * 16
        reqs = conn.send_compound([create, q, close], session.session_id,
                                  tree.tree_connect_id, related=True)
        create_recv(reqs[0])
        resp = SMB2QueryInfoResponse()
        resp.unpack(conn.receive(reqs[1])["data"].get_value())
        assert struct.unpack_from("<Q", resp["buffer"].get_value(), 8)[0] == 10
        assert conn.receive(reqs[2])["status"].get_value() == 0
        # a failed CREATE fails the related requests that follow with its status
        op2 = Open(tree, "missing.txt")
        create, _ = op2.create(2, 0x00120089, 0x80, 7, CreateDisposition.FILE_OPEN,
                               CreateOptions.FILE_NON_DIRECTORY_FILE, send=False)
        close = SMB2CloseRequest()
        close["file_id"] = b"\xff" * 16
        reqs = conn.send_compound([create, close], session.session_id, tree.tree_connect_id,
                                  related=True)
        for r in reqs:
            with pytest.raises(SMBResponseException) as e:
                conn.receive(r)
            assert status_of(e) == STATUS_OBJECT_NAME_NOT_FOUND


@needs_libnfs
def test_change_notify_sees_changes_from_both_protocols(server, tmp_path):
    import subprocess

    from smbprotocol.change_notify import CompletionFilter, FileSystemWatcher
    with smb_tree(server) as (conn, session, tree):
        d = open_file(tree, "watched", directory=True)
        w = FileSystemWatcher(d)
        w.start(CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME)
        open_file(tree, "watched\\by-smb.txt", CreateDisposition.FILE_CREATE).close()
        actions = w.wait()
        assert [(a["action"].get_value(), a["file_name"].get_value()) for a in actions] == [
            (1, "by-smb.txt")]
        w = FileSystemWatcher(d)
        w.start(CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME)
        src = tmp_path / "n.txt"
        src.write_bytes(b"from nfs")
        url = server.url("/watched/by-nfs.txt") + "&uid=1000&gid=1000"
        r = subprocess.run(["nfs-cp", str(src), url],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        actions = w.wait()
        assert (1, "by-nfs.txt") in [(a["action"].get_value(), a["file_name"].get_value())
                                     for a in actions]
        # a watch can be cancelled
        w = FileSystemWatcher(d)
        w.start(CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME)
        w.cancel()
        assert w.cancelled
        d.close()
