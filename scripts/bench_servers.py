"""Our server against NFS-Ganesha (NFSv3) and Samba (SMB) on the same workloads, with the
same clients, in one run; the local disk is the ceiling.  See ``scripts/bench servers -h``.

Every server runs as a foreground process this script starts on 127.0.0.1 high ports and
stops by PID; their data, ours included, lives under one directory (a fresh ext4 image
when one can be loop-mounted).  Runs are interleaved server by server; each row reports
the median with min-max over the runs and the ratio ours/peer (>1: ours is faster).  In
the small-file rows each phase (create+write, read, stat, delete) starts in all clients at
once, after all have finished the one before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dittofs.smb.ntlm_crypto import nt_hash  # noqa: E402
from tests.support.server import ServerProcess, free_port  # noqa: E402

PY = sys.executable
OPS = str(ROOT / "scripts" / "bench_ops.py")
CACHE = Path(os.environ.get("DITTOFS_BENCH_CACHE", Path.home() / ".cache" / "dittofs-bench"))
USER, PASSWORD = "bench", "Bench-pw-1"
PACKAGES = {"ganesha.nfsd": "nfs-ganesha", "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so":
            "nfs-ganesha-vfs", "rpcbind": "rpcbind", "smbd": "samba",
            "smbclient": "smbclient", "nfs-cp": "libnfs-utils",
            "/usr/include/nfsc/libnfs.h": "libnfs-dev", "gcc": "gcc"}


def sh(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}… failed ({r.returncode}): "
                           f"{r.stderr.strip()[-800:] or r.stdout.strip()[-800:]}")
    return r


def install() -> None:
    def have(what: str) -> bool:
        return os.path.exists(what) if what.startswith("/") else bool(shutil.which(what))
    missing = sorted({pkg for what, pkg in PACKAGES.items() if not have(what)})
    if missing:
        print(f"installing {' '.join(missing)}", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        prefix = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(prefix + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                 *missing], check=True, env=env)


def nfsops() -> str:
    src = ROOT / "scripts" / "nfsops.c"
    out = CACHE / "nfsops"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        CACHE.mkdir(parents=True, exist_ok=True)
        sh("gcc", "-O2", "-o", str(out), str(src), "-lnfs")
    return str(out)


# -- resource use of a server's process tree ------------------------------------------------

def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    return out


def usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of ``pid`` and its live descendants (and reaped ones)."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = 0.0
    peak = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return cpu, peak / 1024


# -- the servers ---------------------------------------------------------------------------

class Server:
    name = ""
    protocols: tuple[str, ...] = ()
    pid = 0

    def stop(self) -> None:
        pass


class Ours(Server):
    protocols = ("nfs", "smb")

    def __init__(self, base: Path, metadata: str, blocks: str, durability: str,
                 s3_url: str | None, pg_url: str | None) -> None:
        self.name = "dittofs"
        meta = {"type": metadata}
        if metadata == "postgres":
            meta = {"type": "postgres", "url": pg_url, "schema": "bench"}
        blk = {"type": blocks}
        if blocks == "s3":
            blk = {"type": "s3", "bucket": "bench", "endpoint_url": s3_url,
                   "access_key": "testing", "secret_key": "testing", "create_bucket": True}
        cfg = {"metadata_stores": {"default": meta}, "block_stores": {"default": blk},
               "shares": [{"name": "/export", "root_squash": False, "durability": durability}],
               "users": [{"name": USER, "uid": 0, "gid": 0,
                          "nt_hash": nt_hash(PASSWORD).hex()}]}
        self.srv = ServerProcess(cfg, root=base / "dittofs")
        self.srv.start()
        self.pid = self.srv.proc.pid
        # The NFS and SMB ports open before the control plane has finished starting (its
        # migrations and the bootstrap admin's argon2 hash, four threads for ~0.2 s): like
        # Ganesha's grace period below, measure once the server has finished starting.
        wait_port(self.srv.api_port, self.srv.proc, self.srv.log_path)
        self.nfs_url = f"nfs://127.0.0.1/export%s?version=3&nfsport={self.srv.port}" \
                       f"&mountport={self.srv.port}"
        self.smb = ("127.0.0.1", self.srv.smb_port, "export")

    def stop(self) -> None:
        self.srv.stop()
        self.srv.cleanup()


class Ganesha(Server):
    protocols = ("nfs",)

    def __init__(self, base: Path) -> None:
        self.name = "ganesha"
        self.dir = base / "ganesha"
        export = self.dir / "export"
        export.mkdir(parents=True)
        port, mport = free_port(), free_port()
        conf = self.dir / "ganesha.conf"
        conf.write_text(f"""
NFS_CORE_PARAM {{ NFS_Port = {port}; MNT_Port = {mport}; NLM_Port = {free_port()};
  Rquota_Port = {free_port()}; Bind_addr = 127.0.0.1; Protocols = 3; Enable_NLM = false;
  Enable_RQUOTA = false; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = {export}; Access_Type = RW;
  Squash = No_Root_Squash; SecType = sys; Protocols = 3; Transports = TCP;
  FSAL {{ Name = VFS; }} }}
LOG {{ Default_Log_Level = WARN; }}
""")
        # Ganesha will not start without an rpcbind to register with; keep that rpcbind's
        # port 111 private in its own network namespace (it registers over the Unix socket).
        Path("/run/rpcbind").mkdir(parents=True, exist_ok=True)
        self.rpcbind = None
        if not _rpcbind_answers():
            Path("/run/rpcbind.sock").unlink(missing_ok=True)  # stale, from a dead rpcbind
            self.rpcbind = subprocess.Popen(["unshare", "--net", "rpcbind", "-f", "-w"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not _rpcbind_answers() and time.monotonic() < deadline:
                time.sleep(0.1)
        self.log = self.dir / "ganesha.log"
        self.proc = subprocess.Popen(["ganesha.nfsd", "-F", "-f", str(conf), "-L",
                                      str(self.log), "-p", str(self.dir / "ganesha.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        wait_port(port, self.proc, self.log)
        wait_port(mport, self.proc, self.log)
        time.sleep(1)  # Ganesha refuses calls for a moment after listening (grace period)
        self.nfs_url = f"nfs://127.0.0.1{export}%s?version=3&nfsport={port}&mountport={mport}"

    def stop(self) -> None:
        for p in (self.proc, self.rpcbind):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


class Samba(Server):
    protocols = ("smb",)

    def __init__(self, base: Path) -> None:
        self.name = "samba"
        d = base / "samba"
        for sub in ("share", "private", "lock", "state", "cache", "pid", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = d / "smb.conf"
        conf.write_text(f"""[global]
  smb ports = {port}
  interfaces = lo
  bind interfaces only = yes
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  log file = {d}/log/smbd.log
  passdb backend = tdbsam
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  disable netbios = yes
  server role = standalone server
[bench]
  path = {d}/share
  read only = no
""")
        sh("smbpasswd", "-c", str(conf), "-s", "-a", "root", input=f"{PASSWORD}\n{PASSWORD}\n")
        # Its own session: smbd signals its whole process group when it stops.
        self.proc = subprocess.Popen(["smbd", "-F", "--no-process-group", "-s", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        wait_port(port, self.proc, d / "log" / "smbd.log")
        self.smb = ("127.0.0.1", port, "bench")
        self.user = "root"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class LocalDisk(Server):
    protocols = ("nfs", "smb")

    def __init__(self, base: Path) -> None:
        self.name = "local disk"
        self.root = base / "local"
        self.root.mkdir()
        self.pid = 0


def _rpcbind_answers() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_UNIX) as so:
            so.connect("/run/rpcbind.sock")
        return True
    except OSError:
        return False


def wait_port(port: int, proc: subprocess.Popen, log: Path, limit: float = 30) -> None:
    import socket
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-1500:] if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# -- workloads -----------------------------------------------------------------------------

#: (row, unit, higher is better)
ROWS = [
    ("seq write", "MB/s", True), ("seq read", "MB/s", True),
    ("4K files create+write, 1 client", "files/s", True),
    ("4K files read, 1 client", "files/s", True), ("4K files stat, 1 client", "files/s", True),
    ("4K files delete, 1 client", "files/s", True),
    ("4K files create+write, 8 clients", "files/s", True),
    ("4K files read, 8 clients", "files/s", True),
    ("4K files stat, 8 clients", "files/s", True),
    ("4K files delete, 8 clients", "files/s", True),
    ("list directory", "s", False),
    ("rand read 4K QD1", "IOPS", True), ("rand write 4K QD1", "IOPS", True),
    ("rand read 4K QD16", "IOPS", True), ("rand write 4K QD16", "IOPS", True),
]


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.seq_mib = 32 if quick else 256
        self.files = 200 if quick else 2000
        self.listing = 1000 if quick else 10000
        self.ops = 300 if quick else 2000


def _parallel(cmds: list[list[str]], timeout: float = 900) -> list[dict]:
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(p.args[:3])}… failed: {stderr.strip()[-800:]}")
        out.append(json.loads(stdout))
    return out


def _phased(cmds: list[list[str]], phases: tuple[str, ...]) -> list[dict]:
    """Run clients in ``files ... sync`` mode: every phase starts in all of them at once,
    once all have finished the one before, so that each row measures that operation
    from all clients together (with clients free-running, the slowest client's phase
    overlaps the next phase of the others)."""
    errs = [tempfile.TemporaryFile("w+") for _ in cmds]  # a pipe could fill up and block
    procs = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=e,
                              text=True) for c, e in zip(cmds, errs, strict=True)]
    results: list[dict] = [{} for _ in procs]

    def err(i: int) -> str:
        errs[i].seek(0)
        return errs[i].read().strip()[-800:]
    try:
        for k, phase in enumerate(phases):
            for i, (p, r) in enumerate(zip(procs, results, strict=True)):
                line = p.stdout.readline()
                if not line:
                    p.wait(60)
                    raise RuntimeError(f"{' '.join(p.args[:3])}… failed in {phase}: {err(i)}")
                r.update(json.loads(line))
            if k < len(phases) - 1:
                for p in procs:
                    p.stdin.write("go\n")
                    p.stdin.flush()
        for i, p in enumerate(procs):
            p.stdin.close()
            if p.wait(60) != 0:
                raise RuntimeError(f"{' '.join(p.args[:3])}… failed: {err(i)}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for e in errs:
            e.close()
    return results


class Runner:
    def __init__(self, sizes: Sizes, src: Path, work: Path, nfsops_bin: str) -> None:
        self.sizes = sizes
        self.src = src
        self.work = work
        self.nfsops = nfsops_bin

    def client(self, server: Server, proto: str, *args: str) -> list[str]:
        """The command line of one client process for ``server`` over ``proto``."""
        if isinstance(server, LocalDisk):
            return [PY, OPS, "local", str(server.root), *args]
        if proto == "nfs":
            return [self.nfsops, server.nfs_url % "", *args]
        host, port, share = server.smb
        return [PY, OPS, "smb", host, str(port), share, getattr(server, "user", USER), PASSWORD,
                *args]

    def _path(self, server: Server, proto: str, name: str) -> str:
        return f"/{name}" if proto == "nfs" and not isinstance(server, LocalDisk) else name

    def seq(self, server: Server, proto: str, name: str) -> tuple[float, float]:
        mb = self.src.stat().st_size / 1e6
        back = self.work / "back.bin"
        if isinstance(server, LocalDisk):
            t0 = time.perf_counter()
            shutil.copyfile(self.src, server.root / name)
            t1 = time.perf_counter()
            shutil.copyfile(server.root / name, back)
            t2 = time.perf_counter()
        elif proto == "nfs":
            url = server.nfs_url % f"/{name}"
            t0 = time.perf_counter()
            sh("nfs-cp", str(self.src), url)
            t1 = time.perf_counter()
            sh("nfs-cp", url, str(back))
            t2 = time.perf_counter()
        else:
            host, port, share = server.smb
            base = ["smbclient", f"//{host}/{share}", "-p", str(port), "-U",
                    f"{getattr(server, 'user', USER)}%{PASSWORD}", "-c"]
            t0 = time.perf_counter()
            sh(*base, f"put {self.src} {name}")
            t1 = time.perf_counter()
            sh(*base, f"get {name} {back}")
            t2 = time.perf_counter()
        if back.stat().st_size != self.src.stat().st_size:
            raise RuntimeError(f"{server.name}: {name} came back with the wrong size")
        back.unlink()
        return mb / (t1 - t0), mb / (t2 - t1)

    def run(self, server: Server, proto: str, run: int) -> dict[str, float]:
        s = self.sizes
        out: dict[str, float] = {}
        tag = f"r{run}-{proto}"
        big = f"{tag}-seq.bin"
        out["seq write"], out["seq read"] = self.seq(server, proto, big)
        for clients in (1, 8):
            per = s.files // clients
            phases = (("create", "create+write"), ("read", "read"), ("stat", "stat"),
                      ("delete", "delete"))
            res = _phased([self.client(server, proto, "files",
                                       self._path(server, proto, f"{tag}-files{clients}-{i}"),
                                       str(per), "sync") for i in range(clients)],
                          tuple(phase for phase, _ in phases))
            for phase, label in phases:
                out[f"4K files {label}, {clients} client{'s' if clients > 1 else ''}"] = (
                    per * clients / max(r[phase] for r in res))
        d = self._path(server, proto, f"{tag}-list")
        _parallel([self.client(server, proto, "populate", d, str(s.listing))])
        res = _parallel([self.client(server, proto, "list", d)])[0]
        if res["entries"] != s.listing + 2:
            raise RuntimeError(f"{server.name}: listed {res['entries']} of {s.listing} + 2")
        out["list directory"] = res["secs"]
        size = self.src.stat().st_size
        path = self._path(server, proto, big)
        for qd in (1, 16):
            for rw, label in (("r", "read"), ("w", "write")):
                ops = s.ops // qd if qd > 1 else s.ops
                res = _parallel([self.client(server, proto, "randio", path, str(size), str(ops),
                                             rw, str(run * 100 + i)) for i in range(qd)])
                out[f"rand {label} 4K QD{qd}"] = ops * qd / max(r["secs"] for r in res)
        return out


# -- report -----------------------------------------------------------------------------------

def fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.2f}" if v < 10 else f"{v:,.1f}"


def table(proto: str, title: str, results: dict, servers: list[str], peer: str,
          sizes: Sizes) -> str:
    width = 46
    lines = [f"== {title}", f"{'workload':<{width}}" + "".join(f"{s:>24}" for s in servers)
             + f"{'ours/' + peer:>14}"]
    for row, unit, higher in ROWS:
        label = f"{row} ({unit})"
        if row.startswith("seq"):
            label = f"{row} {sizes.seq_mib} MiB ({unit})"
        if row.startswith("4K files"):
            label = f"{row.replace('4K files', f'{sizes.files} x 4K files')} ({unit})"
        if row == "list directory":
            label = f"list {sizes.listing:,} entries ({unit})"
        cells = []
        med = {}
        for srv in servers:
            vals = results.get(srv, {}).get(row, [])
            if not vals:
                cells.append(f"{'-':>24}")
                continue
            m = statistics.median(vals)
            med[srv] = m
            rng = f" [{fmt(min(vals))}-{fmt(max(vals))}]" if len(vals) > 1 else ""
            cells.append(f"{fmt(m) + rng:>24}")
        ratio = "-"
        if "dittofs" in med and peer in med and med[peer] > 0 and med["dittofs"] > 0:
            r = med["dittofs"] / med[peer] if higher else med[peer] / med["dittofs"]
            ratio = f"{r:.2f}"
        lines.append(f"{label[:width]:<{width}}" + "".join(cells) + f"{ratio:>14}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench servers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and one run (smoke)")
    ap.add_argument("--runs", type=int, default=None, help="runs per server (default 3)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--metadata", choices=("memory", "lmdb", "postgres"), default="lmdb")
    ap.add_argument("--blocks", choices=("memory", "fs", "s3"), default="fs")
    ap.add_argument("--durability", choices=("writeback", "local", "remote"), default="local")
    ap.add_argument("--protocols", default="nfs,smb", help="nfs, smb or both")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get what is missing")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    sizes = Sizes(args.quick)
    protocols = [p for p in args.protocols.split(",") if p]
    if not args.no_install:
        install()
    binary = nfsops()
    base = Path(tempfile.mkdtemp(prefix="dittofs-bench-"))
    # Every run leaves its 256 MiB file (and our rewritten blocks) on every server: the
    # image is sized for the runs asked for (sparse: only what is written takes space).
    image_mount = _fresh_filesystem(base, (2 << 30) * (1 + runs * len(protocols)))
    data = image_mount or base
    extra = []
    s3 = pg = None
    try:
        if args.blocks == "s3":
            from tests.support.s3 import MotoServer
            s3 = MotoServer().start()
            extra.append(s3)
        if args.metadata == "postgres":
            from tests.support.postgres import PostgresCluster
            pg = PostgresCluster().start()
            extra.append(pg)
        src = base / "src.bin"
        with open(src, "wb") as fh:
            for _ in range(sizes.seq_mib):
                fh.write(os.urandom(1 << 20))
        servers: list[Server] = [Ours(data, args.metadata, args.blocks, args.durability,
                                      s3.url if s3 else None, pg.url if pg else None)]
        if "nfs" in protocols:
            servers.append(Ganesha(data))
        if "smb" in protocols:
            servers.append(Samba(data))
        servers.append(LocalDisk(data))
        runner = Runner(sizes, src, base, binary)
        results: dict[str, dict[str, dict[str, list[float]]]] = {p: {} for p in protocols}
        t_start = time.monotonic()
        for run in range(runs):
            for proto in protocols:
                for srv in servers:
                    if proto not in srv.protocols:
                        continue
                    if isinstance(srv, LocalDisk) and proto != protocols[0]:
                        results[proto][srv.name] = results[protocols[0]][srv.name]
                        continue
                    print(f"run {run + 1}/{runs}: {proto} {srv.name}", file=sys.stderr)
                    got = runner.run(srv, proto, run)
                    for row, v in got.items():
                        results[proto].setdefault(srv.name, {}).setdefault(row, []).append(v)
        resources = {s.name: usage(s.pid) for s in servers if s.pid}
    finally:
        for s in locals().get("servers", []):
            s.stop()
        for e in extra:
            e.stop()
        if image_mount:
            subprocess.run(["umount", "-l", str(image_mount)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    variant = f"metadata={args.metadata} blocks={args.blocks} durability={args.durability}"
    out = []
    if "nfs" in protocols:
        out.append(table("nfs", "NFSv3: nfs-cp for sequential, nfsops (libnfs, one process per "
                         f"client) for the rest; dittofs {variant}", results["nfs"],
                         ["dittofs", "ganesha", "local disk"], "ganesha", sizes))
    if "smb" in protocols:
        out.append(table("smb", "SMB: smbclient put/get for sequential, smbprotocol (one process "
                         f"per client) for the rest; dittofs {variant}", results["smb"],
                         ["dittofs", "samba", "local disk"], "samba", sizes))
    out.append("== server process (all runs): CPU seconds, peak RSS MiB")
    for name, (cpu, rss) in resources.items():
        out.append(f"{name:<20}{cpu:>10.1f} s{rss:>10.0f} MiB")
    runs_note = f"median of {runs} run(s) [min-max]; ratio ours/peer, >1 = ours faster"
    out.append(f"({runs_note}; data on {'a fresh ext4 image' if image_mount else base}; "
               f"{time.monotonic() - t_start:.0f} s)")
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "variant": variant, "runs": runs, "quick": args.quick,
            "sizes": vars(sizes), "results": results,
            "resources": {k: {"cpu_s": v[0], "peak_rss_mib": v[1]} for k, v in resources.items()},
            "time": time.time()}, indent=1))
    return 0


def _fresh_filesystem(base: Path, size: int) -> Path | None:
    """A fresh ext4 image of ``size`` bytes loop-mounted under ``base`` (creation rates on
    an aged root filesystem vary 20x here); None when that cannot be done (no root, no
    loop device)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        return None
    img = base / "fs.img"
    mnt = base / "mnt"
    mnt.mkdir()
    try:
        with open(img, "wb") as fh:
            fh.truncate(size)
        sh("mkfs.ext4", "-q", "-F", str(img))
        sh("mount", "-o", "loop", str(img), str(mnt))
    except (RuntimeError, OSError):
        img.unlink(missing_ok=True)
        return None
    return mnt


if __name__ == "__main__":
    sys.exit(main())
