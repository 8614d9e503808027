"""The real server driven by Samba's smbclient, and the same files seen over NFS."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.integration.conftest import needs_libnfs, stop_and_check
from tests.integration.test_libnfs import sha256
from tests.support.server import PASSWORDS, ServerProcess
from tests.support.smb import needs_smbclient, smbclient, smbclient_list

pytestmark = [pytest.mark.integration, needs_smbclient]

DIALECTS = {
    "SMB2_02": ("--option=client max protocol=SMB2_02",),
    "SMB3_11-signed": ("--option=client min protocol=SMB3_11",
                       "--option=client signing=required"),
}


def names(listing: str) -> set[str]:
    """Entry names of an smbclient ``ls``."""
    out = set()
    for line in listing.splitlines():
        m = re.match(r"^  (\S.*?)\s+[ADHNRS]+\s+\d+\s+\w{3} \w{3}", line)
        if m:
            out.add(m.group(1))
    return out


def test_share_listing(server):
    r = smbclient_list(server)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("\t")]
    assert ["export", "Disk", "/export"] in rows
    assert any(row[:2] == ["IPC$", "IPC"] for row in rows)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_put_get_64mib(server, tmp_path, dialect):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(64 * 1024 * 1024 + 777))
    back = tmp_path / "back.bin"
    r = smbclient(server, f"put {src} big-{dialect}.bin; get big-{dialect}.bin {back}",
                  *DIALECTS[dialect])
    assert r.returncode == 0, r.stdout + r.stderr
    assert sha256(back) == sha256(src)
    r = smbclient(server, f"ls big-{dialect}.bin", *DIALECTS[dialect])
    assert str(64 * 1024 * 1024 + 777) in r.stdout


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_mkdir_rename_rm_ls(server, tmp_path, dialect):
    top = f"tree-{dialect}"
    small = tmp_path / "small.txt"
    small.write_text("small file\n")
    r = smbclient(server, f"mkdir {top}; mkdir {top}/sub; put {small} {top}/sub/a.txt; "
                          f"rename {top}/sub/a.txt {top}/sub/b.txt; ls {top}/sub/*",
                  *DIALECTS[dialect])
    assert r.returncode == 0, r.stdout + r.stderr
    assert names(r.stdout) == {".", "..", "b.txt"}
    r = smbclient(server, f"rm {top}/sub/b.txt; rmdir {top}/sub; ls {top}/*", *DIALECTS[dialect])
    assert r.returncode == 0, r.stdout + r.stderr
    assert names(r.stdout) == {".", ".."}
    r = smbclient(server, f"rmdir {top}; ls {top}", *DIALECTS[dialect])
    assert "NT_STATUS_NO_SUCH_FILE" in r.stdout + r.stderr or \
        "NT_STATUS_OBJECT_NAME_NOT_FOUND" in r.stdout + r.stderr


def test_errors_clients_see(server, tmp_path):
    r = smbclient(server, "rmdir no-such-dir")
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND" in r.stdout + r.stderr
    r = smbclient(server, "mkdir full; put /etc/hostname full/x; rmdir full")
    assert "NT_STATUS_DIRECTORY_NOT_EMPTY" in r.stdout + r.stderr
    r = smbclient(server, "ls", share="nosuchshare")
    assert "NT_STATUS_BAD_NETWORK_NAME" in r.stdout + r.stderr


@needs_libnfs
def test_cross_protocol(server, tmp_path):
    """Written over NFS, read over SMB, and the reverse; renames seen on the other side."""
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    url = server.url("/from-nfs.bin") + "&uid=1000&gid=1000"
    r = subprocess.run(["nfs-cp", str(a), url], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = tmp_path / "got.bin"
    r = smbclient(server, f"get from-nfs.bin {got}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sha256(got) == sha256(a)

    b = tmp_path / "b.bin"
    b.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    r = smbclient(server, f"put {b} from-smb.bin; rename from-smb.bin renamed-by-smb.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out.bin"
    r = subprocess.run(["nfs-cp", server.url("/renamed-by-smb.bin"), str(out)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sha256(out) == sha256(b)
    listing = subprocess.run(["nfs-ls", server.url()], capture_output=True, text=True,
                             timeout=60).stdout
    assert " renamed-by-smb.bin" in listing and " from-smb.bin" not in listing
    # SMB sees alice (uid 1000) as the owner NFS reports
    line = next(x for x in listing.splitlines() if x.endswith(" renamed-by-smb.bin"))
    assert line.split()[2:4] == ["1000", "1000"], line

    from dittofs.nfs import codec as C
    from dittofs.nfs.const import NfsStat, Proc
    from dittofs.nfs.types import DirOpArgs3
    from tests.support.rpcclient import NfsClient
    with NfsClient(server.port, uid=1000, gid=1000) as nfs:
        st, ok = nfs.mount(b"/export")
        root = ok.fhandle
        st, _ = nfs.nfs(Proc.RENAME, C.RenameArgs(DirOpArgs3(root, b"from-nfs.bin"),
                                                  DirOpArgs3(root, b"renamed-by-nfs.bin")))
        assert st == NfsStat.NFS3_OK
    r = smbclient(server, "ls")
    assert {"renamed-by-nfs.bin", "renamed-by-smb.bin"} <= names(r.stdout)
    assert "from-nfs.bin" not in names(r.stdout)


def test_wrong_password_is_refused_and_rate_limited(tmp_path):
    srv = ServerProcess({"metadata_stores": {"default": {"type": "memory"}},
                         "block_stores": {"default": {"type": "memory"}},
                         "smb": {"login_failure_limit": 3, "login_failure_window": 30}}).start()
    try:
        for _ in range(3):
            r = smbclient(srv, "ls", password="not-the-password")
            assert "NT_STATUS_LOGON_FAILURE" in r.stdout + r.stderr
        r = smbclient(srv, "ls")  # the right password, but too many failures from here
        assert "NT_STATUS_LOGON_FAILURE" in r.stdout + r.stderr
        r = smbclient(srv, "ls", user="nobody-known", password="x")
        assert "NT_STATUS_LOGON_FAILURE" in r.stdout + r.stderr
        log = srv.log_text()
        assert "too many failures" in log
        for secret in [*PASSWORDS.values(), "not-the-password"]:
            assert secret not in log
        for u in ("aa4e34060a4bd2975bdae707d1fa93c6", "4caaf7f9e125d1c3a78c50f6704857a4"):
            assert u not in log
    finally:
        stop_and_check(srv)


@pytest.mark.parametrize("algorithm", ["AES_GMAC", "AES_CMAC"])
def test_signed_session_with_each_signing_algorithm(server, algorithm):
    """3.1.1 negotiates the signing algorithm (SMB2_SIGNING_CAPABILITIES): the client's
    first choice we have.  smbprotocol checks every signature we send."""
    import uuid

    from smbprotocol.connection import Connection, SigningAlgorithms
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    from tests.support.smb import open_file

    want = getattr(SigningAlgorithms, algorithm)
    offered = [want, SigningAlgorithms.AES_CMAC, SigningAlgorithms.HMAC_SHA256]
    conn = Connection(uuid.uuid4(), "127.0.0.1", server.smb_port, require_signing=True)
    conn.connect(dialect=0x0311, timeout=10, preferred_signing_algos=offered)
    try:
        assert conn.signing_algorithm_id == want
        session = Session(conn, "alice", PASSWORDS["alice"], require_encryption=False)
        session.connect()
        tree = TreeConnect(session, r"\\127.0.0.1\export")
        tree.connect()
        f = open_file(tree, f"signed-{algorithm}.bin")
        data = os.urandom(300_000)
        f.write(data, 0)
        assert f.read(0, len(data)) == data
        f.close()
    finally:
        conn.disconnect(True)
