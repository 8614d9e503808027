"""Share policies over SMB (guest access, required signing) and the SET_INFO classes,
each checked from a second client or over NFS."""

from __future__ import annotations

import struct
import subprocess
import uuid

import pytest
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.open import CreateDisposition

from tests.integration.conftest import needs_libnfs, stop_and_check
from tests.support.server import PASSWORDS, ServerProcess
from tests.support.smb import HAVE_SMBCLIENT, open_file, smb_tree

pytestmark = pytest.mark.integration
ACCESS_DENIED = 0xC0000022


@pytest.fixture(scope="module")
def srv():
    mem = {"type": "memory"}
    s = ServerProcess({
        "metadata_stores": {"default": mem}, "block_stores": {"default": mem},
        "shares": [{"name": "/export"},
                   {"name": "/public", "guest_ok": True, "root": {"mode": 0o777}},
                   {"name": "/secure", "smb_signing_required": True}],
    }).start()
    yield s
    stop_and_check(s)


@pytest.mark.skipif(not HAVE_SMBCLIENT, reason="smbclient is not installed")
def test_guest_only_where_the_share_allows_it(srv):
    def anon(share: str) -> subprocess.CompletedProcess:
        return subprocess.run(["smbclient", f"//127.0.0.1/{share}", "-p", str(srv.smb_port),
                               "-N", "-c", "ls"], capture_output=True, text=True, timeout=60)
    r = anon("export")
    assert "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr
    r = anon("public")
    assert r.returncode == 0, r.stdout + r.stderr


def test_share_that_requires_signing(srv):
    with smb_tree(srv, signing=True, share="secure") as (_, _, tree):
        f = open_file(tree, "signed-only.txt")
        f.write(b"ok", 0)
        f.close()
    from smbprotocol.connection import Connection, Dialects
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect
    # 3.0.2: at 3.1.1 every client must sign its TREE_CONNECT anyway (MS-SMB2 3.3.5.7)
    conn = Connection(uuid.uuid4(), "127.0.0.1", srv.smb_port, require_signing=False)
    conn.connect(dialect=Dialects.SMB_3_0_2, timeout=10)
    try:
        session = Session(conn, "alice", PASSWORDS["alice"], require_encryption=False)
        session.connect()
        with pytest.raises(SMBResponseException) as e:
            TreeConnect(session, r"\\127.0.0.1\secure").connect()
        assert e.value.status == ACCESS_DENIED
        TreeConnect(session, r"\\127.0.0.1\export").connect()  # others need no signing
    finally:
        conn.disconnect(True)


def test_echo_and_create_contexts(srv):
    with smb_tree(srv) as (conn, session, tree):
        # the reply grants the credits asked for
        assert conn.echo(sid=session.session_id, credit_request=8) == 8
        from smbprotocol.create_contexts import (
            CreateContextName,
            SMB2CreateContextRequest,
            SMB2CreateQueryMaximalAccessRequest,
        )
        from smbprotocol.open import Open
        mxac = SMB2CreateContextRequest()
        mxac["buffer_name"] = CreateContextName.SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST
        mxac["buffer_data"] = SMB2CreateQueryMaximalAccessRequest()
        op = Open(tree, "ctx.txt")
        resp = op.create(2, 0x0012019F, 0x80, 7, CreateDisposition.FILE_OVERWRITE_IF, 0x40,
                         create_contexts=[mxac])
        from smbprotocol.create_contexts import SMB2CreateQueryMaximalAccessResponse
        mx = next(c for c in resp if isinstance(c, SMB2CreateQueryMaximalAccessResponse))
        maximal = mx["maximal_access"].get_value()
        assert mx["query_status"].get_value() == 0
        assert maximal & 0x0012019F == 0x0012019F  # alice owns it: read, write, attributes
        op.close()


@needs_libnfs
def test_set_info_classes_seen_over_nfs(srv):
    import smbclient as hl
    kw = {"port": srv.smb_port, "username": "alice", "password": PASSWORDS["alice"]}
    base = r"\\127.0.0.1\export"
    with hl.open_file(base + r"\si.txt", mode="wb", **kw) as f:
        f.write(b"0123456789")
    hl.truncate(base + r"\si.txt", 4, **kw)
    hl.link(base + r"\si.txt", base + r"\si-link.txt", **kw)
    hl.utime(base + r"\si.txt", times=(1_500_000_000, 1_600_000_000), **kw)
    st = hl.stat(base + r"\si.txt", **kw)
    assert (st.st_size, st.st_nlink, int(st.st_mtime)) == (4, 2, 1_600_000_000)
    url = f"nfs://127.0.0.1/export/si-link.txt?version=3&nfsport={srv.port}&mountport={srv.port}"
    out = subprocess.run(["nfs-cat", url], capture_output=True, timeout=60)
    assert out.stdout == b"0123"
    listing = subprocess.run(["nfs-ls", url.replace("/si-link.txt", "")], capture_output=True,
                             text=True, timeout=60).stdout
    line = next(x for x in listing.splitlines() if x.endswith(" si.txt"))
    assert line.split()[1] == "2"  # nlink
    # the read-only attribute is the owner's write bit
    from smbprotocol.file_info import FileAttributes
    with smb_tree(srv) as (conn, session, tree):
        f = open_file(tree, "si.txt", CreateDisposition.FILE_OPEN,
                      access=0x0012019F | 0x100)
        from smbprotocol.file_info import FileBasicInformation, FileInformationClass
        from smbprotocol.open import SMB2SetInfoRequest
        basic = FileBasicInformation()
        basic["file_attributes"] = FileAttributes.FILE_ATTRIBUTE_READONLY
        req = SMB2SetInfoRequest()
        req["info_type"] = 1
        req["file_info_class"] = FileInformationClass.FILE_BASIC_INFORMATION
        req["file_id"] = f.file_id
        req["buffer"] = basic
        conn.receive(conn.send(req, session.session_id, tree.tree_connect_id))
        f.close()
    listing = subprocess.run(["nfs-ls", url.replace("/si-link.txt", "")], capture_output=True,
                             text=True, timeout=60).stdout
    line = next(x for x in listing.splitlines() if x.endswith(" si.txt"))
    assert line.startswith("-r--r--r--"), line


def test_security_descriptor_sets_the_mode_and_refuses_giving_files_away(srv):
    from smbprotocol.open import SMB2SetInfoRequest
    with smb_tree(srv) as (conn, session, tree):
        f = open_file(tree, "sd.txt", CreateDisposition.FILE_OVERWRITE_IF,
                      access=0x0012019F | 0x40000 | 0x80000)

        def sid(kind: int, n: int) -> bytes:
            return struct.pack("<BB6sII", 1, 2, (22).to_bytes(6, "big"), kind, n)

        def ace(mask: int, s: bytes) -> bytes:
            return struct.pack("<BBHI", 0, 0, 8 + len(s), mask) + s
        everyone = struct.pack("<BB6sI", 1, 1, (1).to_bytes(6, "big"), 0)
        aces = [ace(0x1 | 0x2 | 0x20, sid(1, 1000)), ace(0x1, sid(2, 1000)), ace(0, everyone)]
        dacl = struct.pack("<BBHHH", 2, 0, 8 + sum(map(len, aces)), 3, 0) + b"".join(aces)
        sd = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + dacl

        def set_sd(data: bytes, which: int) -> None:
            req = SMB2SetInfoRequest()
            req["info_type"] = 3
            req["file_info_class"] = 0
            req["additional_information"] = which
            req["file_id"] = f.file_id
            req["buffer"] = data
            conn.receive(conn.send(req, session.session_id, tree.tree_connect_id))

        set_sd(sd, 0x4)
        from tests.integration.test_smb_protocol import query
        got = query(conn, session, tree, f, 3, 0, additional=0x4)
        o_dacl = struct.unpack_from("<I", got, 16)[0]
        masks = [struct.unpack_from("<I", got, o_dacl + 8 + 4 + i * 24)[0] for i in range(3)]
        assert masks[0] & 0x23 == 0x23 and masks[1] & 0x3 == 0x1 and masks[2] & 0x3 == 0
        owner_sd = struct.pack("<BBHIIII", 1, 0, 0x8000, 20, 0, 0, 0) + sid(1, 4242)
        with pytest.raises(SMBResponseException) as e:
            set_sd(owner_sd, 0x1)  # alice may not give her file to uid 4242
        assert e.value.status == ACCESS_DENIED
        f.close()
