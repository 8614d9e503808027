"""The ``dittofs`` command: init writes a configuration that loads, config show applies
DITTOFS_* variables and hides secrets, validate names the bad key, and start --daemon /
status / stop run the real server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.support.server import free_port

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "dittofs.cli"]


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DITTOFS_")}
    e.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=e)


def test_init_show_validate(tmp_path):
    cfg = tmp_path / "d.yaml"
    r = run("init", str(cfg), "--data-dir", str(tmp_path / "data"))
    assert r.returncode == 0, r.stderr
    assert (cfg.stat().st_mode & 0o777) == 0o640
    assert run("init", str(cfg)).returncode != 0  # no silent overwrite
    assert run("config", "validate", "-c", str(cfg)).returncode == 0
    r = run("config", "show", "-c", str(cfg), env={"DITTOFS_NFS__PORT": "2049"})
    shown = yaml.safe_load(r.stdout)
    assert shown["nfs"]["port"] == 2049 and shown["server"]["data_dir"] == str(tmp_path / "data")
    data = yaml.safe_load(cfg.read_text())
    data["users"] = [{"name": "u", "nt_hash": "a4f49c406510bdcab6824ee7c30fd852"}]
    cfg.write_text(yaml.safe_dump(data))
    r = run("config", "show", "-c", str(cfg), "-o", "json")
    assert "a4f49c40" not in r.stdout and "<redacted>" in r.stdout
    data["nfs"]["port"] = "not-a-port"
    cfg.write_text(yaml.safe_dump(data))
    r = run("config", "validate", "-c", str(cfg))
    assert r.returncode != 0 and "nfs.port" in r.stderr


def test_start_daemon_status_stop(tmp_path):
    cfg = tmp_path / "d.yaml"
    assert run("init", str(cfg), "--data-dir", str(tmp_path / "data")).returncode == 0
    data = yaml.safe_load(cfg.read_text())
    data["nfs"].update(port=free_port(), bind="127.0.0.1")
    data["smb"].update(port=free_port(), bind="127.0.0.1")
    data["api"].update(port=free_port())
    cfg.write_text(yaml.safe_dump(data))
    assert run("status", "-c", str(cfg)).returncode == 3
    r = run("start", "-c", str(cfg), "--daemon")
    assert r.returncode == 0, r.stderr + r.stdout
    try:
        r = run("status", "-c", str(cfg))
        assert r.returncode == 0 and "running (pid" in r.stdout, r.stdout
        assert f"nfs 127.0.0.1:{data['nfs']['port']}" in r.stdout
        assert run("start", "-c", str(cfg), "--daemon").returncode != 0  # already running
    finally:
        r = run("stop", "-c", str(cfg))
    assert r.returncode == 0 and "stopped" in r.stdout, r.stderr
    assert run("status", "-c", str(cfg)).returncode == 3
    log = (tmp_path / "data" / "dittofs.log").read_text()
    assert "dittofs stopped" in log and "Traceback" not in log
