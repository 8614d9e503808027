"""scripts/bench rpc: the per-call probe runs end to end against the real server and
reports both calls for every client count (its figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_bench_rpc_reports_rate_and_server_cpu_per_call():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_rpc.py"),
                        "--clients", "1,2", "--seconds", "0.3"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [line.split() for line in r.stdout.splitlines()[1:] if line.strip()]
    assert [(row[0], row[1]) for row in rows] == [
        ("GETATTR", "1"), ("LOOKUP", "1"), ("GETATTR", "2"), ("LOOKUP", "2")]
    for row in rows:
        assert float(row[2].replace(",", "")) > 0 and float(row[3]) > 0
