"""The workload operations of scripts/bench for SMB (the smbprotocol package) and for the
local disk (the ceiling), mirroring scripts/nfsops.c for NFS.  One JSON object out.

  bench_ops.py smb HOST PORT SHARE USER PASSWORD MODE ARGS...
  bench_ops.py local ROOT MODE ARGS...

MODE: files DIR N [sync] | populate DIR N | list DIR | randio FILE SIZE OPS r|w SEED
(files ... sync: each phase's time is printed as it ends, one JSON object a line, and the
next phase waits for a line on stdin: the runner starts each phase of all clients at once.)
Timing starts after connecting, so process start-up and session set-up are not counted.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid

PAGE = b"x" * 4096


class Local:
    def __init__(self, root: str) -> None:
        self.root = root

    def p(self, path: str) -> str:
        return os.path.join(self.root, path)

    def mkdir(self, path: str) -> None:
        os.makedirs(self.p(path), exist_ok=True)

    def create(self, path: str, data: bytes) -> None:
        with open(self.p(path), "wb") as f:
            if data:
                f.write(data)

    def read(self, path: str) -> bytes:
        with open(self.p(path), "rb") as f:
            return f.read(4096)

    def size(self, path: str) -> int:
        return os.stat(self.p(path)).st_size

    def remove(self, path: str) -> None:
        os.unlink(self.p(path))

    def listdir(self, path: str) -> int:
        return sum(1 for _ in os.scandir(self.p(path))) + 2  # with . and .., as NFS and SMB

    def handle(self, path: str, write: bool):
        fd = os.open(self.p(path), os.O_RDWR if write else os.O_RDONLY)
        return (lambda off: os.pread(fd, 4096, off),
                lambda off: os.pwrite(fd, PAGE, off))


class Smb:
    def __init__(self, host: str, port: int, share: str, user: str, password: str) -> None:
        from smbprotocol.connection import Connection
        from smbprotocol.session import Session
        from smbprotocol.tree import TreeConnect
        self.conn = Connection(uuid.uuid4(), host, port, require_signing=True)
        self.conn.connect(timeout=30)
        self.session = Session(self.conn, user, password, require_encryption=False)
        self.session.connect()
        self.tree = TreeConnect(self.session, rf"\\{host}\{share}")
        self.tree.connect()

    def _open(self, path: str, disposition: int, directory: bool = False, access: int = 0):
        from smbprotocol.open import CreateOptions, FileAttributes, ImpersonationLevel, Open
        op = Open(self.tree, path.replace("/", "\\"))
        op.create(ImpersonationLevel.Impersonation, access or 0x0012019F,
                  FileAttributes.FILE_ATTRIBUTE_NORMAL, 7, disposition,
                  CreateOptions.FILE_DIRECTORY_FILE if directory
                  else CreateOptions.FILE_NON_DIRECTORY_FILE)
        return op

    def mkdir(self, path: str) -> None:
        self._open(path, 3, directory=True).close()  # FILE_OPEN_IF

    def create(self, path: str, data: bytes) -> None:
        op = self._open(path, 5)  # FILE_OVERWRITE_IF
        if data:
            op.write(data, 0)
        op.close()

    def read(self, path: str) -> bytes:
        op = self._open(path, 1, access=0x00120089)
        data = op.read(0, 4096)
        op.close()
        return data

    def size(self, path: str) -> int:
        op = self._open(path, 1, access=0x00120080)
        n = op.end_of_file
        op.close()
        return n

    def remove(self, path: str) -> None:
        from smbprotocol.open import CreateOptions, FileAttributes, ImpersonationLevel, Open
        op = Open(self.tree, path.replace("/", "\\"))
        op.create(ImpersonationLevel.Impersonation, 0x00010000,
                  FileAttributes.FILE_ATTRIBUTE_NORMAL, 7, 1,
                  CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_DELETE_ON_CLOSE)
        op.close()

    def listdir(self, path: str) -> int:
        from smbprotocol.exceptions import NoMoreFiles
        from smbprotocol.open import FileInformationClass
        d = self._open(path, 1, directory=True, access=0x00120089)
        cls = FileInformationClass.FILE_ID_BOTH_DIRECTORY_INFORMATION
        n = len(d.query_directory("*", cls, flags=1, max_output=65536))
        while True:
            try:
                n += len(d.query_directory("*", cls, max_output=65536))
            except NoMoreFiles:
                break
        d.close()
        return n

    def handle(self, path: str, write: bool):
        op = self._open(path, 1)
        return (lambda off: op.read(off, 4096), lambda off: op.write(PAGE, off))


def phase_end(sync: bool, name: str, start: float, last: bool = False) -> float:
    """files ... sync: report a phase, then wait for the runner's go (none after the last)."""
    secs = time.perf_counter() - start
    if sync:
        print(json.dumps({name: secs}), flush=True)
        if not last and not sys.stdin.readline():
            raise SystemExit(f"phase {name}: the runner went away")
    return secs


def main(argv: list[str]) -> dict:
    if argv[0] == "smb":
        fs, rest = Smb(argv[1], int(argv[2]), argv[3], argv[4], argv[5]), argv[6:]
    else:
        fs, rest = Local(argv[1]), argv[2:]
    mode = rest[0]
    if mode in ("files", "populate"):
        d, n = rest[1], int(rest[2])
        sync = rest[3:4] == ["sync"]
        fs.mkdir(d)
        names = [f"{d}/f{i:06d}" for i in range(n)]
        t0 = time.perf_counter()
        for name in names:
            fs.create(name, PAGE if mode == "files" else b"")
        if mode == "populate":
            return {"create": time.perf_counter() - t0}
        out = {"create": phase_end(sync, "create", t0)}
        t0 = time.perf_counter()
        for name in names:
            assert fs.read(name) == PAGE
        out["read"] = phase_end(sync, "read", t0)
        t0 = time.perf_counter()
        for name in names:
            assert fs.size(name) == 4096
        out["stat"] = phase_end(sync, "stat", t0)
        t0 = time.perf_counter()
        for name in names:
            fs.remove(name)
        out["delete"] = phase_end(sync, "delete", t0, last=True)
        return {} if sync else out
    if mode == "list":
        t0 = time.perf_counter()
        n = fs.listdir(rest[1])
        return {"entries": n, "secs": time.perf_counter() - t0}
    if mode == "randio":
        path, size, ops, rw, seed = rest[1], int(rest[2]), int(rest[3]), rest[4], int(rest[5])
        read, write = fs.handle(path, rw == "w")
        op = write if rw == "w" else read
        rng = random.Random(seed)
        offsets = [rng.randrange(size // 4096) * 4096 for _ in range(ops)]
        t0 = time.perf_counter()
        for off in offsets:
            op(off)
        return {"ops": ops, "secs": time.perf_counter() - t0}
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    result = main(sys.argv[1:])
    if result:  # files ... sync printed its phases already
        print(json.dumps(result))
