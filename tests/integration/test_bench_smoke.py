"""scripts/bench servers --quick: the comparison runs end to end against all three servers.
It checks that the tables are produced, not the figures (speed is not asserted in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="installs and runs Ganesha/Samba")]


def test_bench_servers_quick_produces_both_tables(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_servers.py"), "--quick",
                        "--json", str(out)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = r.stdout
    nfs = text.split("== NFSv3")[1].split("== SMB")[0]
    smb = text.split("== SMB")[1].split("== server process")[0]
    for table, peer in ((nfs, "ganesha"), (smb, "samba")):
        header = table.splitlines()[1]
        assert "dittofs" in header and peer in header and "local disk" in header
        rows = [line for line in table.splitlines()[2:] if line.strip()]
        assert len(rows) == 15
    usage = text.split("== server process")[1]
    for name in ("dittofs", "ganesha", "samba"):
        assert name in usage
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"nfs", "smb"}
    assert set(data["results"]["nfs"]) == {"dittofs", "ganesha", "local disk"}
    assert set(data["results"]["smb"]) == {"dittofs", "samba", "local disk"}
    for proto in ("nfs", "smb"):
        for server, rows in data["results"][proto].items():
            assert len(rows) == 15 and all(v[0] > 0 for v in rows.values()), (proto, server)
