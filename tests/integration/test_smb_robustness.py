"""Malformed SMB input gets the right NTSTATUS or a closed connection, and the server keeps
serving everyone else."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from smbprotocol.exceptions import SMBResponseException

from tests.integration.conftest import stop_and_check
from tests.support.server import ServerProcess
from tests.support.smb import HAVE_SMBCLIENT, open_file, smb_tree, smbclient

pytestmark = pytest.mark.integration

INVALID_PARAMETER = 0xC000000D
ACCESS_DENIED = 0xC0000022


@pytest.fixture(scope="module")
def srv():
    s = ServerProcess({"metadata_stores": {"default": {"type": "memory"}},
                       "block_stores": {"default": {"type": "memory"}}}).start()
    yield s
    stop_and_check(s)


def header(command: int, mid: int, credits: int = 1, session: int = 0, tree: int = 0,
           flags: int = 0) -> bytes:
    return struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 1, 0, command, credits, flags, 0,
                       mid, 0, tree, session, bytes(16))


def negotiate_body(dialects=(0x0202, 0x0210), size: int = 36) -> bytes:
    return struct.pack("<HHHHI16sIHH", size, len(dialects), 1, 0, 0, os.urandom(16), 0, 0,
                       0) + struct.pack(f"<{len(dialects)}H", *dialects)


class Raw:
    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send(self, message: bytes) -> None:
        self.s.sendall(struct.pack(">I", len(message)) + message)

    def recv(self) -> bytes | None:
        head = self._exact(4)
        if head is None:
            return None
        return self._exact(struct.unpack(">I", head)[0])

    def _exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def closed(self) -> bool:
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True

    def negotiate(self, credits: int = 1) -> bytes:
        self.send(header(0, 0, credits) + negotiate_body())
        return self.recv()

    def close(self) -> None:
        self.s.close()


def status(reply: bytes) -> int:
    return struct.unpack_from("<I", reply, 8)[0]


def still_serving(srv) -> None:
    with smb_tree(srv) as (_, _, tree):
        f = open_file(tree, "alive.txt")
        f.write(b"ok", 0)
        assert f.read(0, 2) == b"ok"
        f.close()
    if HAVE_SMBCLIENT:
        r = smbclient(srv, "ls alive.txt")
        assert r.returncode == 0, r.stdout + r.stderr
    assert srv.alive()


def test_bad_netbios_length_closes(srv):
    c = Raw(srv.smb_port)
    c.s.sendall(b"\x85\x00\x00\x00")  # a NetBIOS session keepalive type, not direct TCP
    assert c.closed()
    c = Raw(srv.smb_port)
    c.s.sendall(b"\x00\xff\xff\xff")  # 16 MiB message: over the limit
    assert c.closed()
    still_serving(srv)


def test_truncated_header_closes(srv):
    c = Raw(srv.smb_port)
    c.send(b"\xfeSMB" + bytes(20))
    assert c.closed()
    c = Raw(srv.smb_port)
    c.send(b"\xfeSMB\x20\x00" + bytes(58))  # header StructureSize 32
    assert c.closed()
    still_serving(srv)


def test_wrong_structure_size_is_invalid_parameter(srv):
    c = Raw(srv.smb_port)
    c.send(header(0, 0) + negotiate_body(size=35))
    reply = c.recv()
    assert reply is not None and status(reply) == INVALID_PARAMETER
    assert struct.unpack_from("<H", reply, 64)[0] == 9  # an ERROR response body
    c.close()
    still_serving(srv)


def test_unknown_command_and_huge_credit_request(srv):
    c = Raw(srv.smb_port)
    reply = c.negotiate(credits=65535)
    assert status(reply) == 0
    granted = struct.unpack_from("<H", reply, 14)[0]
    assert 1 <= granted <= 8192
    c.send(header(0x20, 1))
    reply = c.recv()
    assert status(reply) == INVALID_PARAMETER
    c.send(header(0x0D, 500000))  # far outside the credit window
    assert c.closed()
    still_serving(srv)


def test_smb1_negotiate(srv):
    def smb1(dialects: list[bytes]) -> bytes:
        body = b"".join(b"\x02" + d + b"\x00" for d in dialects)
        head = struct.pack("<4sBIBHH8sHHHHH", b"\xffSMB", 0x72, 0, 0x18, 0xC853, 0, bytes(8),
                           0, 0, 0, 0, 0)
        return head + b"\x00" + struct.pack("<H", len(body)) + body

    c = Raw(srv.smb_port)
    c.send(smb1([b"NT LM 0.12", b"SMB 2.002", b"SMB 2.???"]))
    reply = c.recv()
    assert reply[:4] == b"\xfeSMB" and status(reply) == 0
    assert struct.unpack_from("<H", reply, 64 + 4)[0] == 0x02FF
    c.send(header(0, 1) + negotiate_body((0x0202, 0x0210, 0x0300)))
    reply = c.recv()
    assert status(reply) == 0 and struct.unpack_from("<H", reply, 68)[0] == 0x0300
    c.close()
    c = Raw(srv.smb_port)
    c.send(smb1([b"NT LM 0.12"]))  # SMB1 only: we do not speak it
    assert c.closed()
    still_serving(srv)


def test_unsigned_request_on_signed_session(srv):
    with smb_tree(srv, signing=True) as (conn, session, tree):
        f = open_file(tree, "signed.txt")
        f.close()
        assert session.signing_required
        session.signing_required = False  # the client now sends unsigned requests
        conn.require_signing = False
        with pytest.raises(SMBResponseException) as e:
            open_file(tree, "signed.txt")
        assert e.value.status == ACCESS_DENIED
        session.signing_required = True  # so that the logoff on the way out is signed
        conn.require_signing = True
    still_serving(srv)


def test_garbage_from_many_connections(srv):
    conns = []
    for i in range(30):
        c = Raw(srv.smb_port)
        if i % 3 == 0:
            c.s.sendall(os.urandom(200))
        elif i % 3 == 1:
            c.send(os.urandom(100 + i))
        else:
            c.negotiate()
            c.send(header(i % 19, 1) + os.urandom(64))
        conns.append(c)
    for c in conns:
        c.close()
    still_serving(srv)


def test_unsigned_tree_connect_at_311_closes(srv):
    """MS-SMB2 3.3.5.7: on an authenticated 3.1.1 session the TREE_CONNECT must be signed."""
    import uuid

    from smbprotocol.connection import Connection, Dialects
    from smbprotocol.exceptions import SMBConnectionClosed
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    from tests.support.server import PASSWORDS
    conn = Connection(uuid.uuid4(), "127.0.0.1", srv.smb_port, require_signing=False)
    conn.connect(dialect=Dialects.SMB_3_1_1, timeout=10)
    try:
        session = Session(conn, "alice", PASSWORDS["alice"], require_encryption=False)
        session.connect()
        with pytest.raises((SMBConnectionClosed, SMBResponseException, OSError)):
            TreeConnect(session, r"\\127.0.0.1\export").connect()
    finally:
        conn.disconnect(False)
    still_serving(srv)
