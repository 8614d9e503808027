"""The Linux kernel's CIFS (SMB2/3) client, in a qemu guest, against the real server; and
a file written through the kernel's NFS mount read back through its CIFS mount."""

from __future__ import annotations

import pytest

from tests.e2e import harness
from tests.e2e.test_kernel_nfs import WORKLOAD
from tests.integration.conftest import metadata_config, stop_and_check
from tests.support.server import PASSWORDS, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(harness.available() is not None,
                                                   reason=str(harness.available()))]


def run(srv: ServerProcess, script: str) -> None:
    r = harness.run_guest(script, timeout=900)
    assert r.status == 0 and "ALL-OK" in r.output, (
        f"guest status {r.status}\n--- guest output ---\n{r.output}\n"
        f"--- console (tail) ---\n{r.console[-6000:]}\n--- server log (tail) ---\n"
        f"{srv.log_text()[-3000:]}")


def cifs_workload(srv: ServerProcess, vers: str) -> str:
    mount = harness.cifs_mount_cmd(srv.smb_port, "alice", PASSWORDS["alice"], vers)
    return (f"MNT=/mnt\nKIND=cifs\n{mount} || {{ echo mount failed; dmesg | tail -30; "
            f"exit 9; }}\n{WORKLOAD}\numount /mnt || exit 8\n")


@pytest.fixture(scope="module")
def embedded():
    srv = ServerProcess({"shares": [{"name": "/export", "root_squash": False}]}).start()
    yield srv
    stop_and_check(srv)


@pytest.mark.parametrize("vers", ["2.1", "3.1.1"])
def test_kernel_cifs_client_embedded_default(embedded, vers):
    run(embedded, cifs_workload(embedded, vers))


def test_kernel_cifs_client_postgres_and_s3(request):
    cfg = metadata_config("postgres", request, "s3")
    cfg["shares"] = [{"name": "/export", "root_squash": False}]
    srv = ServerProcess(cfg).start()
    try:
        run(srv, cifs_workload(srv, "3.1.1"))
    finally:
        stop_and_check(srv)


def test_written_over_nfs_read_over_cifs(embedded):
    mount_cifs = harness.cifs_mount_cmd(embedded.smb_port, "alice", PASSWORDS["alice"],
                                        "3.1.1", target="/c")
    script = f"""
fail() {{ echo "FAIL: $*"; dmesg | tail -30; exit 1; }}
mkdir -p /n /c
{harness.nfs_mount_cmd(embedded.port, target="/n")} || fail "nfs mount"
{mount_cifs} || fail "cifs mount"
dd if=/dev/urandom of=/tmp/x bs=1M count=12 2>/dev/null
cp /tmp/x /n/cross.bin && sync || fail "write over nfs"
cmp /tmp/x /c/cross.bin || fail "read over cifs"
mv /c/cross.bin /c/moved.bin || fail "rename over cifs"
sync; echo 3 > /proc/sys/vm/drop_caches
[ -e /n/cross.bin ] && fail "old name still seen over nfs"
cmp /tmp/x /n/moved.bin || fail "renamed file over nfs"
# root wrote it over NFS with mode 0644: alice may not write it over SMB until chmod
echo refused >> /c/moved.bin 2>/dev/null && fail "alice appended to root's 0644 file"
chmod 666 /n/moved.bin || fail "chmod over nfs"
echo appended >> /c/moved.bin || fail "append over cifs"
sync; echo 3 > /proc/sys/vm/drop_caches
[ "$(tail -c 9 /n/moved.bin)" = appended ] || fail "append seen over nfs"
rm /n/moved.bin; sync; echo 3 > /proc/sys/vm/drop_caches
[ -e /c/moved.bin ] && fail "removed file still seen over cifs"
umount /c; umount /n
echo ALL-OK
"""
    run(embedded, script)
