"""Content durability: SIGKILL at random moments, dedup through NFS, an S3 outage."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time

import pytest

from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from tests.integration.conftest import metadata_config, needs_libnfs, stop_and_check
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess, kill_during, restart

pytestmark = pytest.mark.integration
OK = NfsStat.NFS3_OK
CHUNK = 256 * 1024


def write_file(c, root, name, data, file_sync):
    st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, name), (0, EMPTY_SATTR)))
    assert st == OK, st
    how = StableHow.FILE_SYNC if file_sync else StableHow.UNSTABLE
    for off in range(0, len(data), CHUNK):
        piece = data[off:off + CHUNK]
        st, w = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, off, len(piece), how, piece))
        assert st == OK, st
    if not file_sync:
        st, _ = c.nfs(Proc.COMMIT, C.CommitArgs(res.obj, 0, 0))
        assert st == OK
    return res.obj


def read_file(c, fh, size):
    out = bytearray()
    while len(out) < size:
        st, r = c.nfs(Proc.READ, C.ReadArgs(fh, len(out), 1 << 20))
        assert st == OK, st
        out += r.data
        if r.eof:
            break
    return bytes(out)


def crash_rounds(srv, rounds, rng):
    committed: dict[bytes, tuple[bytes, str, int]] = {}  # name -> handle, sha256, size
    for rnd in range(rounds):
        def writer(stop, rnd=rnd):
            try:
                with NfsClient(srv.port, timeout=10) as c:
                    root = c.mount(b"/export")[1].fhandle
                    i = 0
                    while not stop.is_set():
                        name = b"c%02d-%03d" % (rnd, i)
                        data = os.urandom(rng.randrange(1, 3 * 1024 * 1024))
                        fh = write_file(c, root, name, data, file_sync=i % 2 == 1)
                        committed[name] = (fh, hashlib.sha256(data).hexdigest(), len(data))
                        i += 1
            except (OSError, ConnectionError, AssertionError):
                pass  # killed mid-file: that file was never committed
        kill_during(srv, writer, rng.uniform(0.3, 1.2))
        with NfsClient(srv.port) as c:
            for name, (fh, digest, size) in committed.items():
                data = read_file(c, fh, size)
                assert hashlib.sha256(data).hexdigest() == digest, (rnd, name, len(data), size)
    return committed


def test_committed_bytes_survive_sigkill_20_times(request):
    srv = ServerProcess(metadata_config("lmdb", request, "fs")).start()
    try:
        committed = crash_rounds(srv, 20, random.Random(42))
        assert len(committed) >= 20
    finally:
        stop_and_check(srv)


def test_remote_tier_survives_sigkill_with_s3(request):
    cfg = metadata_config("lmdb", request, "s3")
    cfg["shares"] = [{"name": "/export", "durability": "remote"}]
    srv = ServerProcess(cfg).start()
    try:
        assert len(crash_rounds(srv, 4, random.Random(7))) >= 4
    finally:
        stop_and_check(srv)


@pytest.mark.parametrize("tier", ["writeback", "local"])
def test_acknowledged_writes_survive_a_process_crash(request, tier):
    """What a reply acknowledged outlives a SIGKILL of the server in every tier, even
    with no COMMIT or FLUSH: UNSTABLE NFS writes and SMB writes without WRITE_THROUGH sit
    in the WAL and the metadata store (page cache), the namespace changes with them; only a
    machine crash may lose them (NFS clients then see a new verifier and write again).
    SMB creates and deletes, not synced (only FLUSH asks for that), outlive it too."""
    from smbprotocol.open import CreateDisposition, CreateOptions

    from tests.support.smb import open_file, smb_tree

    cfg = metadata_config("lmdb", request, "fs")
    cfg["shares"] = [{"name": "/export", "durability": tier}]
    srv = ServerProcess(cfg).start()
    try:
        rng = random.Random(3)
        files = {b"u%02d" % i: rng.randbytes(rng.randrange(1, 600_000)) for i in range(12)}
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            st, d = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(root, b"dir"), EMPTY_SATTR))
            assert st == OK
            handles = {}
            for name, data in files.items():
                st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, name),
                                                          (0, EMPTY_SATTR)))
                assert st == OK
                for off in range(0, len(data), CHUNK):
                    piece = data[off:off + CHUNK]
                    st, w = c.nfs(Proc.WRITE, C.WriteArgs(res.obj, off, len(piece),
                                                          StableHow.UNSTABLE, piece))
                    assert st == OK and w.committed == StableHow.UNSTABLE
                handles[name] = res.obj
            st, _ = c.nfs(Proc.REMOVE, DirOpArgs3(root, b"u00"))
            assert st == OK
            del files[b"u00"]
        smb_data = rng.randbytes(300_000)
        with smb_tree(srv) as (_conn, _session, tree):
            made = open_file(tree, "made.bin", CreateDisposition.FILE_CREATE)
            made.write(b"made by smb", 0)
            made.close()
            doomed = open_file(tree, "doomed.bin", CreateDisposition.FILE_CREATE,
                               access=0x0012019F | 0x10000,
                               options=CreateOptions.FILE_DELETE_ON_CLOSE)
            doomed.write(b"gone soon", 0)
            doomed.close()
            op = open_file(tree, "smb.bin", CreateDisposition.FILE_OVERWRITE_IF)
            op.write(smb_data[:100_000], 0)
            op.write(smb_data[100_000:], 100_000)
            # no FLUSH, no CLOSE: the kill comes first
            restart(srv, kill=True)
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            st, _ = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"dir"))
            assert st == OK
            st, _ = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"u00"))
            assert st == NfsStat.NFS3ERR_NOENT
            for name, data in files.items():
                assert read_file(c, handles[name], len(data) + 1) == data, name
            st, res = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"smb.bin"))
            assert st == OK and res.obj_attributes.size == len(smb_data)
            assert read_file(c, res.object, len(smb_data) + 1) == smb_data
            st, res = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"made.bin"))
            assert st == OK and read_file(c, res.object, 100) == b"made by smb"
            st, _ = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"doomed.bin"))
            assert st == NfsStat.NFS3ERR_NOENT
    finally:
        stop_and_check(srv)


def dir_bytes(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@needs_libnfs
def test_dedup_three_copies_store_one_and_gc_empties(request, tmp_path):
    srv = ServerProcess(metadata_config("lmdb", request, "fs")).start()
    blocks = srv.dir / "data" / "blocks" / "default"
    try:
        src = tmp_path / "same.bin"
        src.write_bytes(os.urandom(64 * 1024 * 1024))
        for name in ("one", "two", "three"):
            r = subprocess.run(["nfs-cp", str(src), srv.url("/" + name)], capture_output=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
        restart(srv)  # a clean stop uploads everything
        stored = dir_bytes(blocks)
        assert stored == 64 * 1024 * 1024, stored  # one copy, not three
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            for name in (b"one", b"two"):
                assert c.nfs(Proc.REMOVE, DirOpArgs3(root, name))[0] == OK
            assert dir_bytes(blocks) == stored  # "three" still holds every block
            assert c.nfs(Proc.REMOVE, DirOpArgs3(root, b"three"))[0] == OK
        # Freed blocks go once a metadata sync covers the removes (the background sync,
        # every 200 ms by default): until then a crash could bring the file back.
        deadline = time.monotonic() + 5
        while dir_bytes(blocks) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dir_bytes(blocks) == 0
        restart(srv)
        assert dir_bytes(blocks) == 0
    finally:
        stop_and_check(srv)


def test_s3_outage_keeps_writes_flowing_and_loses_nothing(request, s3):
    from tests.support.s3 import CuttableProxy
    proxy = CuttableProxy(s3.port)
    cfg = metadata_config("lmdb", request, "s3")
    cfg["block_stores"]["default"]["endpoint_url"] = f"http://127.0.0.1:{proxy.port}"
    cfg["block_stores"]["default"]["cache_bytes"] = 256 * 1024 * 1024
    srv = ServerProcess(cfg).start()
    files = {}
    try:
        with NfsClient(srv.port, timeout=30) as c:
            root = c.mount(b"/export")[1].fhandle
            proxy.cut()
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < 30:  # the outage lasts 30 s
                if i < 20:  # 80 MiB written into the cache while S3 is away
                    data = os.urandom(4 * 1024 * 1024 + 100)
                    name = b"out-%03d" % i
                    files[name] = (write_file(c, root, name, data, file_sync=False), data)
                    i += 1
                else:
                    time.sleep(0.5)
            proxy.restore()
            for fh, data in files.values():
                assert read_file(c, fh, len(data)) == data
        restart(srv)  # a clean stop waits for the uploads that resumed
        with NfsClient(srv.port) as c:
            for fh, data in files.values():
                assert read_file(c, fh, len(data)) == data
        log = "".join(p.read_text() for p in srv.dir.glob("server*.log"))
        assert log.count("block store of default: upload failed") == 1, log[-3000:]
        assert "works again" in log
    finally:
        stop_and_check(srv)
        proxy.cut()
