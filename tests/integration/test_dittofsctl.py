"""dittofsctl end to end: log in, create a user and a share, use the share with real NFS
and SMB clients, remove it and see the clients refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import HAVE_LIBNFS, stop_and_check
from tests.integration.test_control_api import ADMIN_PW, start
from tests.support.smb import HAVE_SMBCLIENT

pytestmark = pytest.mark.integration
CTL = [sys.executable, "-m", "dittofs.ctl"]


def ctl(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, DITTOFSCTL_CONFIG=str(home / "ctl.json"))
    return subprocess.run([*CTL, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=env)


def test_dittofsctl_manages_users_and_shares(request, tmp_path):
    srv, http = start(request, "sqlite")
    try:
        url = http.base.removesuffix("/api/v1")
        r = ctl(tmp_path, "login", url, "-u", "admin", stdin="wrong\n")
        assert r.returncode != 0 and "401" in r.stderr
        r = ctl(tmp_path, "login", url, "-u", "admin", stdin=ADMIN_PW + "\n")
        assert r.returncode == 0, r.stderr
        cfg = tmp_path / "ctl.json"
        assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
        assert ADMIN_PW not in cfg.read_text()
        r = ctl(tmp_path, "user", "create", "frank", "--uid", "4100", stdin="Frank-pw-12\n")
        assert r.returncode == 0, r.stderr
        for kind, name in (("metadata", "teammeta"), ("block", "teamblocks")):
            r = ctl(tmp_path, "store", "create", kind, name, "--type", "memory")
            assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "store", "list", "metadata", "-o", "json")
        assert {"name": "teammeta", "type": "memory", "source": "api"} in json.loads(r.stdout)
        r = ctl(tmp_path, "share", "create", "/frankshare", "--no-root-squash",
                "--metadata-store", "teammeta", "--block-store", "teamblocks")
        assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "share", "grant", "/frankshare", "--user", "frank",
                "--level", "read-write")
        assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "user", "list", "-o", "json")
        assert {u["name"] for u in json.loads(r.stdout)} == {"admin", "frank"}
        r = ctl(tmp_path, "share", "list")
        assert "/frankshare" in r.stdout and "NAME" in r.stdout.splitlines()[0]
        if HAVE_SMBCLIENT:
            r = subprocess.run(["smbclient", "//127.0.0.1/frankshare", "-p", str(srv.smb_port),
                                "-U", "frank%Frank-pw-12", "-c", "mkdir by-frank"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        if HAVE_LIBNFS and HAVE_SMBCLIENT:
            nfs = f"nfs://127.0.0.1/frankshare?version=3&nfsport={srv.port}&mountport={srv.port}"
            refused = subprocess.run(["nfs-ls", nfs], capture_output=True, text=True,
                                     timeout=60)
            assert refused.returncode != 0  # root has no permission on the share
            out = subprocess.run(["nfs-ls", nfs + "&uid=4100&gid=4100"], capture_output=True,
                                 text=True, timeout=60)
            line = next(x for x in out.stdout.splitlines() if x.endswith(" by-frank"))
            assert line.split()[2] == "4100"
        r = ctl(tmp_path, "share", "delete", "/frankshare")
        assert r.returncode == 0, r.stderr
        if HAVE_LIBNFS:
            nfs = f"nfs://127.0.0.1/frankshare?version=3&nfsport={srv.port}&mountport={srv.port}"
            out = subprocess.run(["nfs-ls", nfs], capture_output=True, text=True, timeout=60)
            assert out.returncode != 0
        if HAVE_SMBCLIENT:
            r = subprocess.run(["smbclient", "//127.0.0.1/frankshare", "-p", str(srv.smb_port),
                                "-U", "frank%Frank-pw-12", "-c", "ls"], capture_output=True,
                               text=True, timeout=60)
            assert "NT_STATUS_BAD_NETWORK_NAME" in r.stdout + r.stderr
        r = ctl(tmp_path, "user", "delete", "frank")
        assert r.returncode == 0, r.stderr
        if HAVE_SMBCLIENT:
            r = subprocess.run(["smbclient", "//127.0.0.1/export", "-p", str(srv.smb_port),
                                "-U", "frank%Frank-pw-12", "-c", "ls"], capture_output=True,
                               text=True, timeout=60)
            assert "NT_STATUS_LOGON_FAILURE" in r.stdout + r.stderr
    finally:
        stop_and_check(srv)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "api.pem", tmp_path / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_api_over_tls_and_certificate_checks(request, tmp_path):
    from tests.support.server import ServerProcess, free_port
    cert, key = _self_signed(tmp_path)
    port = free_port()
    srv = ServerProcess({"metadata_stores": {"default": {"type": "memory"}},
                         "block_stores": {"default": {"type": "memory"}},
                         "api": {"enabled": True, "port": port, "tls_cert": str(cert),
                                 "tls_key": str(key)}},
                        env={"DITTOFS_ADMIN_INITIAL_PASSWORD": ADMIN_PW}).start()
    try:
        import socket
        import time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"https://localhost:{port}"
        r = ctl(tmp_path, "login", url, stdin=ADMIN_PW + "\n")  # unknown CA: refused
        assert r.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in r.stderr, r.stderr
        r = ctl(tmp_path, "login", f"https://127.0.0.1:{port}", "--ca-file", str(cert),
                stdin=ADMIN_PW + "\n")  # trusted CA, but not the name in the certificate
        assert r.returncode != 0 and "match" in r.stderr.lower(), r.stderr
        r = ctl(tmp_path, "login", url, "--ca-file", str(cert), stdin=ADMIN_PW + "\n")
        assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "health", "-o", "json")
        assert r.returncode == 0 and json.loads(r.stdout)["status"] == "ready"
        import ssl
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 on purpose
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(cert))
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with pytest.raises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", port)) as s:
                old.wrap_socket(s, server_hostname="localhost")
    finally:
        stop_and_check(srv)


@pytest.mark.skipif(not (HAVE_SMBCLIENT and HAVE_LIBNFS), reason="needs smbclient and nfs-ls")
def test_share_permissions_enforced_over_nfs_and_smb(request, tmp_path):
    srv, http = start(request, "sqlite")
    try:
        url = http.base.removesuffix("/api/v1")
        assert ctl(tmp_path, "login", url, stdin=ADMIN_PW + "\n").returncode == 0
        for name, uid in (("writer", 4300), ("reader", 4400)):
            r = ctl(tmp_path, "user", "create", name, "--uid", str(uid), stdin="Pw-for-all-1\n")
            assert r.returncode == 0, r.stderr
        assert ctl(tmp_path, "share", "create", "/guarded").returncode == 0
        for who, level in (("writer", "read-write"), ("reader", "read")):
            r = ctl(tmp_path, "share", "grant", "/guarded", "--user", who, "--level", level)
            assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "share", "permissions", "-o", "json")
        assert {(p["user"], p["level"]) for p in json.loads(r.stdout)} == {
            ("writer", "read-write"), ("reader", "read")}

        def smb(user: str, password: str, cmd: str) -> str:
            r = subprocess.run(["smbclient", "//127.0.0.1/guarded", "-p", str(srv.smb_port),
                                "-U", f"{user}%{password}", "-c", cmd], capture_output=True,
                               text=True, timeout=60)
            return r.stdout + r.stderr

        assert "NT_STATUS" not in smb("writer", "Pw-for-all-1", "mkdir w-dir")
        out = smb("reader", "Pw-for-all-1", "ls")
        assert "w-dir" in out
        assert "NT_STATUS_ACCESS_DENIED" in smb("reader", "Pw-for-all-1", "mkdir r-dir")
        assert "NT_STATUS_ACCESS_DENIED" in smb("alice", "Alice-pw-1", "ls")  # not granted

        def nfs(uid: int, *args: str) -> subprocess.CompletedProcess:
            u = (f"nfs://127.0.0.1/guarded{args[-1]}?version=3&nfsport={srv.port}"
                 f"&mountport={srv.port}&uid={uid}&gid={uid}")
            return subprocess.run([*args[:-1], u], capture_output=True, text=True, timeout=60)

        src = tmp_path / "f.txt"
        src.write_text("x")
        assert nfs(4300, "nfs-cp", str(src), "/w-dir/by-nfs.txt").returncode == 0
        listing = nfs(4400, "nfs-ls", "/w-dir")
        assert listing.returncode == 0 and "by-nfs.txt" in listing.stdout
        assert nfs(4400, "nfs-cp", str(src), "/w-dir/by-reader.txt").returncode != 0
        assert nfs(1000, "nfs-ls", "").returncode != 0  # no permission: MOUNT refused
        # revoking the reader's level closes the share to them
        r = ctl(tmp_path, "share", "revoke", "/guarded", "--user", "reader")
        assert r.returncode == 0, r.stderr
        assert "NT_STATUS_ACCESS_DENIED" in smb("reader", "Pw-for-all-1", "ls")
    finally:
        stop_and_check(srv)
