"""Content path through the real server and real clients, per block store and durability tier.

Sequential: nfs-cp of one file in and out (MB/s).  Random: 4 KiB READ/WRITE at queue depth
1 from our Python client (that client's own cost bounds these rates; compare rows, not
servers).  Every variant runs in the same invocation, so rows are comparable.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dittofs.nfs import codec as C  # noqa: E402
from dittofs.nfs.const import Proc, StableHow  # noqa: E402
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3  # noqa: E402
from tests.support.rpcclient import NfsClient  # noqa: E402
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, MotoServer  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402


def variants(s3_url):
    yield "memory", {"type": "memory"}, "local"
    for tier in ("writeback", "local", "remote"):
        yield f"fs/{tier}", {"type": "fs"}, tier
    if s3_url:
        yield "s3/local", {"type": "s3", "bucket": "bench-bucket", "endpoint_url": s3_url,
                           "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
                           "create_bucket": True}, "local"


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_variant(blocks, tier, src, size, ops):
    cfg = {"block_stores": {"default": blocks},
           "shares": [{"name": "/export", "durability": tier}]}
    srv = ServerProcess(cfg).start()
    try:
        mb = size / 1e6
        w = timed(lambda: subprocess.run(["nfs-cp", str(src), srv.url("/seq")], check=True,
                                         capture_output=True))
        out = Path(srv.dir) / "back"
        r = timed(lambda: subprocess.run(["nfs-cp", srv.url("/seq"), str(out)], check=True,
                                         capture_output=True))
        rng = random.Random(1)
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            fh = c.nfs(Proc.LOOKUP, DirOpArgs3(root, b"seq"))[1].object
            page = os.urandom(4096)
            offsets = [rng.randrange(size // 4096) * 4096 for _ in range(ops)]
            rw = timed(lambda: [c.nfs(Proc.WRITE, C.WriteArgs(fh, o, 4096, StableHow.UNSTABLE,
                                                               page)) for o in offsets])
            rr = timed(lambda: [c.nfs(Proc.READ, C.ReadArgs(fh, o, 4096)) for o in offsets])
            c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"x"), (0, EMPTY_SATTR)))
        return mb / w, mb / r, ops / rw, ops / rr
    finally:
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--no-s3", action="store_true")
    args = ap.parse_args()
    size = args.size_mib * 1024 * 1024
    moto = None if args.no_s3 else MotoServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            src.write_bytes(os.urandom(size))
            print(f"{args.size_mib} MiB sequential (nfs-cp), {args.ops} random 4 KiB ops at QD1")
            print(f"{'variant':14}{'write MB/s':>12}{'read MB/s':>12}{'rand W IOPS':>13}"
                  f"{'rand R IOPS':>13}")
            for name, blocks, tier in variants(moto.url if moto else None):
                w, r, rw, rr = run_variant(blocks, tier, src, size, args.ops)
                print(f"{name:14}{w:12.0f}{r:12.0f}{rw:13.0f}{rr:13.0f}")
    finally:
        if moto:
            moto.stop()


if __name__ == "__main__":
    main()
