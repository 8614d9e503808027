"""The Linux kernel's NFSv3 client, in a qemu guest, against the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import harness
from tests.integration.conftest import metadata_config, stop_and_check
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(harness.available() is not None,
                                                   reason=str(harness.available()))]
WORKLOAD = (Path(__file__).with_name("workload.sh")).read_text()


def run_workload(srv: ServerProcess) -> None:
    script = (f"MNT=/mnt\n{harness.nfs_mount_cmd(srv.port)} || {{ echo mount failed; "
              f"dmesg | tail -30; exit 9; }}\n{WORKLOAD}\numount /mnt || exit 8\n")
    r = harness.run_guest(script, timeout=900)
    assert r.status == 0 and "ALL-OK" in r.output, (
        f"guest status {r.status}\n--- guest output ---\n{r.output}\n"
        f"--- console (tail) ---\n{r.console[-6000:]}\n--- server log (tail) ---\n"
        f"{srv.log_text()[-3000:]}")


def test_kernel_nfs_client_embedded_default():
    srv = ServerProcess({"shares": [{"name": "/export", "root_squash": False}]}).start()
    try:
        run_workload(srv)
    finally:
        stop_and_check(srv)


def test_kernel_nfs_client_postgres_and_s3(request):
    cfg = metadata_config("postgres", request, "s3")
    cfg["shares"] = [{"name": "/export", "root_squash": False}]
    srv = ServerProcess(cfg).start()
    try:
        run_workload(srv)
    finally:
        stop_and_check(srv)


