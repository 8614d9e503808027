"""Codecs stay pure: they import neither the reactor nor stores; stores import no protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "dittofs"

PURE = ["rpc/xdr.py", "rpc/record.py", "rpc/message.py", "rpc/program.py", "nfs/const.py",
        "nfs/types.py", "nfs/codec.py", "nfs/handles.py", "metadata/types.py",
        "metadata/errors.py", "metadata/permissions.py", "metadata/service.py",
        "metadata/redo.py",
        "metadata/interfaces.py", "config.py", "payload/cache.py", "smb/md4.py",
        "smb/ntlm_crypto.py", "smb/header.py", "smb/messages.py", "smb/spnego.py",
        "smb/ntlmssp.py", "smb/signing.py", "smb/fileinfo.py", "smb/srvsvc.py",
        "smb/status.py"]


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("rel", PURE)
def test_pure_modules_do_not_import_io(rel):
    bad = {m for m in imports(PKG / rel)
           if m.startswith("twisted.internet") or m.startswith("dittofs.metadata.stores")
           or m.startswith("dittofs.payload.blockstores")}
    assert not bad, f"{rel} imports {bad}"


def test_stores_do_not_import_protocols():
    for path in (PKG / "metadata" / "stores").glob("*.py"):
        bad = {m for m in imports(path)
               if m.startswith(("dittofs.nfs", "dittofs.rpc", "dittofs.smb"))}
        assert not bad, f"{path.name} imports {bad}"


def test_modules_stay_small():
    for path in PKG.rglob("*.py"):
        n = len(path.read_text().splitlines())
        assert n <= 650, f"{path.relative_to(PKG)} has {n} lines; split it by concept"
