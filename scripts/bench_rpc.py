"""Server CPU per NFS call: ``scripts/bench rpc [--clients 1,4] [--seconds 3] [--rounds 1]``.

Starts our server (embedded default stores, as ``scripts/bench servers`` does), creates
one file, then has N client processes each send one pre-encoded call (GETATTR of the
root, LOOKUP of the file) over its own connection in a loop, waiting for each reply.
Reports calls per second and the server process's CPU time per call (user + system, from
/proc): the per-request cost of the RPC path, which the small-file rows of ``bench
servers`` are made of, measured without a client library's own cost in the way.  The
CPU per call moves much less with this machine's speed than the rates do; compare two
builds with interleaved runs (``--rounds``) rather than against figures from another day.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_servers import usage, wait_port  # noqa: E402  (beside this script)

from dittofs.nfs import codec as C  # noqa: E402
from dittofs.nfs.const import NFS_PROGRAM, NFS_V3, Proc  # noqa: E402
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3  # noqa: E402
from dittofs.rpc.message import AuthUnix, encode_call  # noqa: E402
from dittofs.rpc.record import frame_bytes  # noqa: E402
from dittofs.rpc.xdr import Packer  # noqa: E402
from tests.support.rpcclient import NfsClient  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402


def call_record(proc: Proc, args: object) -> bytes:
    p = Packer()
    C.SIGNATURES[proc][0].pack(p, args)
    cred = AuthUnix(0, b"bench", 0, 0, ())
    return frame_bytes(encode_call(1, NFS_PROGRAM, NFS_V3, proc, cred) + p.getvalue())


def client(port: int, record: bytes, seconds: float, out: multiprocessing.Queue) -> None:
    """Send ``record`` and read its reply until ``seconds`` pass; put the count."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(50):
            s.sendall(record)
            reply = s.recv(65536)
            if not reply:
                raise SystemExit("the server closed the connection")
            need = (struct.unpack_from(">I", reply)[0] & 0x7FFFFFFF) + 4
            while len(reply) < need:
                reply += s.recv(65536)
        n += 50
    s.close()
    out.put(n)


def measure(port: int, pid: int, record: bytes, clients: int, seconds: float) -> tuple:
    q: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(port, record, seconds, q))
             for _ in range(clients)]
    before = usage(pid)[0]
    for p in procs:
        p.start()
    calls = sum(q.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return calls / seconds, (usage(pid)[0] - before) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,4", help="client process counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every measurement")
    a = ap.parse_args()
    counts = [int(c) for c in a.clients.split(",")]
    srv = ServerProcess({"shares": [{"name": "/export", "root_squash": False}]})
    srv.start()
    try:
        # The control plane finishes starting (migrations, the admin's password hash) after
        # NFS listens: measure once it has.
        wait_port(srv.api_port, srv.proc, srv.log_path)
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1][0]
            status, _ = c.nfs(Proc.CREATE,
                              C.CreateArgs(DirOpArgs3(root, b"f"), (0, EMPTY_SATTR)))
            if status != 0:
                raise SystemExit(f"CREATE failed: {status}")
        calls = {"GETATTR": call_record(Proc.GETATTR, root),
                 "LOOKUP": call_record(Proc.LOOKUP, DirOpArgs3(root, b"f"))}
        print(f"{'call':<10}{'clients':>8}{'calls/s':>12}{'server CPU/call (us)':>24}")
        for n in counts:
            for name, record in calls.items():
                got = [measure(srv.port, srv.proc.pid, record, n, a.seconds)
                       for _ in range(a.rounds)]
                rate = statistics.median(r for r, _ in got)
                cpu = statistics.median(c for _, c in got)
                print(f"{name:<10}{n:>8}{rate:>12,.0f}{cpu * 1e6:>24.1f}", flush=True)
    finally:
        srv.cleanup()



if __name__ == "__main__":
    main()
