"""A full disk under the server: clients get NFS3ERR_NOSPC / STATUS_DISK_FULL for the write
that did not fit, the server keeps serving, and deleting a file lets writes in again."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from tests.integration.conftest import stop_and_check
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration
OK = NfsStat.NFS3_OK
CHUNK = 512 * 1024


@pytest.fixture()
def small_disk(tmp_path):
    """A 64 MiB ext4 filesystem, loop-mounted (root only)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("needs root and mkfs.ext4 to loop-mount a small filesystem")
    img, mnt = tmp_path / "small.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
    r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(c, root, name):
    """CREATE ``name`` and write to it until the server refuses; return its handle and
    the refusing status."""
    st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, name), (0, EMPTY_SATTR)))
    assert st == OK, st
    data = os.urandom(CHUNK)
    for i in range(400):  # 200 MiB at most, three times the disk
        st, _ = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, i * CHUNK, CHUNK, StableHow.UNSTABLE,
                                              data))
        if st != OK:
            return res.obj, st
    raise AssertionError("200 MiB went into a 64 MiB disk")


def test_full_disk_is_nospc_and_the_server_recovers(small_disk):
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.open import CreateDisposition

    from tests.support.smb import open_file, smb_tree

    srv = ServerProcess({"metadata_stores": {"default": {"type": "lmdb"}},
                         "block_stores": {"default": {"type": "fs"}}},
                        root=Path(small_disk) / "srv").start()
    try:
        with NfsClient(srv.port, timeout=30) as c:
            root = c.mount(b"/export")[1].fhandle
            fh, st = fill(c, root, b"big")
            assert st == NfsStat.NFS3ERR_NOSPC
            st, attrs = c.nfs(Proc.GETATTR, fh)  # still serving
            assert st == OK and attrs.size > 0
        with smb_tree(srv) as (conn, session, tree):
            with pytest.raises(SMBResponseException) as err:  # creating it, or writing
                op = open_file(tree, "more.bin", CreateDisposition.FILE_OVERWRITE_IF)
                for i in range(100):
                    op.write(os.urandom(CHUNK), i * CHUNK)
            assert err.value.status == 0xC000007F  # STATUS_DISK_FULL
        with NfsClient(srv.port, timeout=30) as c:
            root = c.mount(b"/export")[1].fhandle
            assert c.nfs(Proc.REMOVE, DirOpArgs3(root, b"big"))[0] == OK
            assert c.nfs(Proc.REMOVE, DirOpArgs3(root, b"more.bin"))[0] in (
                OK, NfsStat.NFS3ERR_NOENT)
            # the WAL segments of the deleted files go at the next background sync
            deadline = time.monotonic() + 20
            while True:
                st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"after"),
                                                          (1, EMPTY_SATTR)))
                if st == OK:
                    st, w = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, 0, 5, StableHow.FILE_SYNC,
                                                          b"fits!"))
                    if st == OK:
                        break
                assert st == NfsStat.NFS3ERR_NOSPC and time.monotonic() < deadline, st
                time.sleep(0.5)
                c.nfs(Proc.REMOVE, DirOpArgs3(root, b"after"))
            st, r = c.nfs(Proc.READ, C.ReadArgs(res.obj, 0, 100))
            assert st == OK and r.data == b"fits!"
    finally:
        stop_and_check(srv)
