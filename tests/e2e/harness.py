"""Boot a Linux guest under qemu (TCG) whose kernel mounts our server, run a script in it.

The initramfs is busybox-static plus the guest kernel's modules for virtio networking and
the NFS client (with their dependencies), built once and cached.  Each run appends a tiny
second cpio archive holding the script (the kernel unpacks concatenated archives).  The
guest reaches the host's 127.0.0.1 as 10.0.2.2 through qemu's user-mode network; no other
address is used.  Output comes back over the serial console, between markers.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("DITTOFS_E2E_CACHE", Path.home() / ".cache" / "dittofs-e2e"))
NFS_MODULES = ["virtio_pci", "virtio_net", "sunrpc", "grace", "lockd", "nfs_acl", "nfs",
               "nfsv3"]
#: The CIFS client and the crypto it asks for by name (signing, SMB3 key derivation).
CIFS_MODULES = ["cifs", "cmac", "ccm", "gcm", "ctr", "sha512_generic", "md4", "des_generic",
                "ecb", "nls_utf8"]
GUEST_MODULES = NFS_MODULES + CIFS_MODULES
HOST = "10.0.2.2"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /sbin && printf '#!/bin/sh\nexit 0\n' > /sbin/modprobe && chmod 755 /sbin/modprobe
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /mnt /tmp
echo E2E-BEGIN
sh /run.sh
echo "E2E-STATUS $?"
sync
poweroff -f
"""


def kernel() -> tuple[str, str] | None:
    """(kernel version, vmlinuz path) of the newest kernel with modules, or None."""
    for vmlinuz in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        ver = vmlinuz.split("vmlinuz-", 1)[1]
        if os.path.isdir(f"/lib/modules/{ver}"):
            return ver, vmlinuz
    return None


def available() -> str | None:
    """None if a guest can be booted here, else the reason it cannot."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86 is not installed"
    if kernel() is None:
        return "no guest kernel (linux-image-amd64) is installed"
    if not os.path.exists("/bin/busybox") or shutil.which("cpio") is None:
        return "busybox-static and cpio are needed"
    ldd = subprocess.run(["ldd", "/bin/busybox"], capture_output=True, text=True)
    if "not a dynamic executable" not in ldd.stdout + ldd.stderr:
        return "/bin/busybox is not the static build (install busybox-static)"
    return None


def _module_order(ver: str, names: list[str]) -> list[str]:
    """Module files in load order (dependencies first); built-in modules are skipped."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        deps = subprocess.run(["modinfo", "-k", ver, "-F", "depends", name],
                              capture_output=True, text=True).stdout.strip()
        for dep in filter(None, deps.split(",")):
            visit(dep)
        path = subprocess.run(["modinfo", "-k", ver, "-n", name], capture_output=True,
                              text=True).stdout.strip()
        if path.endswith(".ko"):
            order.append(path)
    for n in names:
        visit(n)
    return order


def _cpio(root: Path, out: Path) -> None:
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    with open(out, "wb") as fh:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root,
                       input=files, stdout=fh, check=True)


def base_initramfs(modules: list[str] = GUEST_MODULES) -> Path:
    ver, _ = kernel()
    key = hashlib.sha256((ver + INIT + ",".join(modules)).encode()).hexdigest()[:16]
    out = CACHE / f"base-{ver}-{key}.cpio"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("bin", "proc", "sys", "dev", "lib/modules", "mnt", "tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy("/bin/busybox", root / "bin" / "busybox")
        order = []
        for path in _module_order(ver, modules):
            name = os.path.basename(path)
            shutil.copy(path, root / "lib" / "modules" / name)
            order.append(name)
        (root / "modules.order").write_text("\n".join(order) + "\n")
        init = root / "init"
        init.write_text(INIT)
        init.chmod(0o755)
        _cpio(root, out.with_suffix(".tmp"))
    os.replace(out.with_suffix(".tmp"), out)
    return out


class GuestResult:
    def __init__(self, status: int | None, output: str, console: str) -> None:
        self.status = status
        self.output = output
        self.console = console  # everything, kernel messages included


def run_guest(script: str, timeout: float = 600, memory_mb: int = 512) -> GuestResult:
    """Boot the guest, run ``script`` with /bin/sh, return its status and output."""
    ver, vmlinuz = kernel()
    base = base_initramfs()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "extra"
        root.mkdir()
        (root / "run.sh").write_text(script)
        extra = Path(tmp) / "extra.cpio"
        _cpio(root, extra)
        initrd = Path(tmp) / "initrd.cpio"
        with open(initrd, "wb") as fh:
            fh.write(base.read_bytes())
            fh.write(extra.read_bytes())
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mb), "-smp", "1",
               "-no-reboot", "-display", "none", "-monitor", "none", "-serial", "stdio",
               "-kernel", vmlinuz, "-initrd", str(initrd),
               "-append", "console=ttyS0 rdinit=/init panic=-1 loglevel=4",
               "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
            console = proc.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            console = (e.stdout or b"").decode(errors="replace") + "\n[qemu timed out]"
    console = console.replace("\r\n", "\n")
    m = re.search(r"E2E-BEGIN\n(.*)E2E-STATUS (\d+)", console, re.S)
    if not m:
        return GuestResult(None, "", console)
    return GuestResult(int(m.group(2)), m.group(1), console)


def cifs_mount_cmd(port: int, user: str, password: str, vers: str, share: str = "export",
                   target: str = "/mnt") -> str:
    """mount(2) data for the kernel's CIFS client, passed straight through by busybox
    (there is no mount.cifs helper in the guest, so ip= and unc= are given)."""
    opts = (f"port={port},username={user},password={password},vers={vers},ip={HOST},"
            f"unc=//{HOST}/{share},mfsymlinks,uid=0,gid=0")
    return f"mount -w -t cifs -o {opts} //{HOST}/{share} {target}"


def nfs_mount_cmd(port: int, export: str = "/export", target: str = "/mnt") -> str:
    opts = (f"vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,nolock,"
            f"addr={HOST},mountaddr={HOST}")
    return f"mount -w -t nfs -o {opts} {HOST}:{export} {target}"


