"""The real server driven by Debian's libnfs-utils (nfs-cp, nfs-ls, nfs-cat)."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.integration.conftest import needs_libnfs

pytestmark = [pytest.mark.integration, needs_libnfs]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, timeout=timeout, check=False)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_copy_64mib_in_and_out(server, tmp_path):
    src = tmp_path / "src.bin"
    with open(src, "wb") as fh:
        fh.write(os.urandom(64 * 1024 * 1024 + 12345))  # not a multiple of any block size
    r = run("nfs-cp", str(src), server.url("/big.bin"))
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back.bin"
    r = run("nfs-cp", server.url("/big.bin"), str(back))
    assert r.returncode == 0, r.stderr
    assert back.stat().st_size == src.stat().st_size
    assert sha256(back) == sha256(src)
    listing = run("nfs-ls", server.url()).stdout.decode()
    line = next(x for x in listing.splitlines() if x.endswith(" big.bin"))
    assert str(64 * 1024 * 1024 + 12345) in line.split()


def test_list_directory_of_2000_entries(server, tmp_path):
    from dittofs.nfs import codec as C
    from dittofs.nfs.const import CreateMode, NfsStat, Proc
    from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
    from tests.support.rpcclient import NfsClient

    with NfsClient(server.port) as c:
        st, ok = c.mount(b"/export")
        assert st == 0
        st, made = c.nfs(Proc.MKDIR, C.MkdirArgs(DirOpArgs3(ok.fhandle, b"many"), EMPTY_SATTR))
        assert st == NfsStat.NFS3_OK
        d = made.obj
        for i in range(2000):
            st, _ = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(d, b"file-%04d.txt" % i),
                                                    (CreateMode.GUARDED, EMPTY_SATTR)))
            assert st == NfsStat.NFS3_OK
    r = run("nfs-ls", server.url("/many"))
    assert r.returncode == 0, r.stderr
    names = [ln.split()[-1] for ln in r.stdout.decode().splitlines() if ln.strip()]
    names = [n for n in names if n not in (".", "..")]
    assert sorted(names) == [f"file-{i:04d}.txt" for i in range(2000)]


def test_read_file_written_by_another_connection(server, tmp_path):
    payload = b"written over one connection, read over another\n" * 1000
    src = tmp_path / "note.txt"
    src.write_bytes(payload)
    assert run("nfs-cp", str(src), server.url("/note.txt")).returncode == 0
    r = run("nfs-cat", server.url("/note.txt"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload


def test_copy_onto_existing_name_is_refused_not_corrupting(server, tmp_path):
    # nfs-cp creates GUARDED: an existing name must give EXIST and keep its content.
    a = tmp_path / "a"
    a.write_bytes(b"x" * 100_000)
    b = tmp_path / "b"
    b.write_bytes(b"short")
    assert run("nfs-cp", str(a), server.url("/t.txt")).returncode == 0
    r = run("nfs-cp", str(b), server.url("/t.txt"))
    assert r.returncode != 0 and b"EXIST" in r.stderr + r.stdout
    assert run("nfs-cat", server.url("/t.txt")).stdout == b"x" * 100_000


def test_missing_export_and_file_fail_cleanly(server):
    r = run("nfs-cat", server.url("/no/such/file"))
    assert r.returncode != 0
    url = server.url().replace("/export", "/nope")
    r = run("nfs-ls", url)
    assert r.returncode != 0
