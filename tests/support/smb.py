"""SMB clients for the tests: Samba's smbclient program and the smbprotocol package."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from contextlib import contextmanager

import pytest

from tests.support.server import PASSWORDS

HAVE_SMBCLIENT = shutil.which("smbclient") is not None
needs_smbclient = pytest.mark.skipif(not HAVE_SMBCLIENT, reason="smbclient is not installed")


def smbclient(srv, commands: str, *options: str, user: str = "alice",
              password: str | None = None, share: str = "export",
              timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``smbclient //127.0.0.1/share -c commands`` against ``srv``."""
    pw = PASSWORDS.get(user, "") if password is None else password
    args = ["smbclient", f"//127.0.0.1/{share}", "-p", str(srv.smb_port), "-U", f"{user}%{pw}",
            *options, "-c", commands]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def smbclient_list(srv, *options: str, user: str = "alice") -> subprocess.CompletedProcess:
    args = ["smbclient", "-L", "//127.0.0.1", "-p", str(srv.smb_port), "-U",
            f"{user}%{PASSWORDS[user]}", *options]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@contextmanager
def smb_tree(srv, user: str = "alice", dialect: int | None = None, signing: bool = True,
             share: str = "export"):
    """(connection, session, tree) of smbprotocol on ``srv``; disconnected on exit."""
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    conn = Connection(uuid.uuid4(), "127.0.0.1", srv.smb_port, require_signing=signing)
    conn.connect(dialect=dialect, timeout=10)
    try:
        session = Session(conn, user, PASSWORDS[user], require_encryption=False)
        session.connect()
        tree = TreeConnect(session, rf"\\127.0.0.1\{share}")
        tree.connect()
        yield conn, session, tree
    finally:
        conn.disconnect(True)


def open_file(tree, name: str, disposition: int | None = None, directory: bool = False,
              access: int | None = None, share_access: int | None = None,
              options: int = 0):
    """Create/open ``name`` on ``tree`` with smbprotocol's Open; returns the open."""
    from smbprotocol.open import (
        CreateDisposition,
        CreateOptions,
        FileAttributes,
        ImpersonationLevel,
        Open,
        ShareAccess,
    )

    op = Open(tree, name)
    if disposition is None:
        disposition = CreateDisposition.FILE_OPEN_IF
    if access is None:
        access = 0x0012019F if not directory else 0x001200A9 | 0x40 | 0x10000
    if share_access is None:
        share_access = (ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE
                        | ShareAccess.FILE_SHARE_DELETE)
    opts = options | (CreateOptions.FILE_DIRECTORY_FILE if directory
                      else CreateOptions.FILE_NON_DIRECTORY_FILE)
    op.create(ImpersonationLevel.Impersonation, access,
              FileAttributes.FILE_ATTRIBUTE_DIRECTORY if directory
              else FileAttributes.FILE_ATTRIBUTE_NORMAL, share_access, disposition, opts)
    return op
