"""Start the real server (``twistd -n dittofs``) in a subprocess for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).with_name("twistd")


#: SMB users every test server knows (passwords are the test's, hashes are what the
#: server keeps).
PASSWORDS = {"alice": "Alice-pw-1", "bob": "Bob-pw-2"}
TEST_USERS = [
    {"name": "alice", "uid": 1000, "gid": 1000, "gids": [100],
     "nt_hash": "aa4e34060a4bd2975bdae707d1fa93c6"},
    {"name": "bob", "uid": 1001, "gid": 1001, "nt_hash": "4caaf7f9e125d1c3a78c50f6704857a4"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A dittofs server on a free port with a temp data dir and an optional config."""

    def __init__(self, config: dict | None = None, root: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        """``root``: the directory for data, config and log (default: a new temp dir);
        ``env``: extra environment variables for the server."""
        self.extra_env = dict(env or {})
        self.tmp = tempfile.TemporaryDirectory(prefix="dittofs-test-")
        self.dir = Path(self.tmp.name) if root is None else root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.smb_port = free_port()
        self.api_port = free_port()
        if config is not None:  # None: start with no configuration file at all
            config = dict(config)
            config.setdefault("users", TEST_USERS)
            config["smb"] = {"bind": "127.0.0.1", **(config.get("smb") or {})}
            config["api"] = {"port": self.api_port, **(config.get("api") or {})}
            self.api_port = config["api"]["port"]
        else:
            self.extra_env.setdefault("DITTOFS_API__PORT", str(self.api_port))
        self.config = config
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        args = [str(TWISTD), "-n", "--pidfile=", "--logger", "dittofs.log.observer",
                "dittofs", "--data-dir", str(self.dir / "data"),
                "--nfs-port", str(self.port), "--nfs-bind", "127.0.0.1",
                "--smb-port", str(self.smb_port)]
        if self.config is not None:
            cfg = self.dir / "dittofs.yaml"
            cfg.write_text(yaml.safe_dump(self.config))
            args += ["--config", str(cfg)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DITTOFS_")}
        env.update(self.extra_env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if (self.config or {}).get("smb", {}).get("enabled", True):
                    socket.create_connection(("127.0.0.1", self.smb_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not listen:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        elif self.proc is not None:
            rc = self.proc.returncode
        self.log.close()
        return rc

    def cleanup(self) -> None:
        self.stop()
        self.tmp.cleanup()

    def url(self, path: str = "") -> str:
        return (f"nfs://127.0.0.1/export{path}?version=3&nfsport={self.port}"
                f"&mountport={self.port}")


def kill_during(srv: ServerProcess, work, delay: float, join: float = 15) -> ServerProcess:
    """Run ``work(stop_event)`` in a thread, SIGKILL the server after ``delay`` seconds,
    let the thread finish, and start the server again on the same data."""
    import threading
    stop = threading.Event()
    t = threading.Thread(target=work, args=(stop,))
    t.start()
    time.sleep(delay)
    srv.proc.kill()
    stop.set()
    t.join(join)
    return restart(srv)


def restart(srv: ServerProcess, kill: bool = False) -> ServerProcess:
    """Stop ``srv`` (SIGTERM, or SIGKILL with ``kill``) and start it again on the same
    port, data directory and configuration."""
    if kill and srv.proc is not None:
        srv.proc.kill()
        srv.proc.wait()
    srv.stop()
    srv.log_path = srv.dir / f"server-{int(time.time() * 1000)}.log"
    return srv.start()
