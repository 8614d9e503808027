"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests (Debian's postgresql)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from tests.support.server import free_port


def pg_bindir() -> str | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "pg_ctl")):
            return cand
    pg_ctl = shutil.which("pg_ctl")
    return os.path.dirname(pg_ctl) if pg_ctl else None


class PostgresCluster:
    def __init__(self) -> None:
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries are not installed")
        self.dir = tempfile.mkdtemp(prefix="dittofs-pg-")
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            pwd.getpwnam("postgres")
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> "PostgresCluster":
        data = os.path.join(self.dir, "data")
        self._run(f"{self.bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        self._run(f"{self.bindir}/pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"),
                  "-w", "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                  "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self, mode: str = "immediate") -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", mode,
                  "-w", "stop")

    def restart(self) -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", os.path.join(self.dir, "data"), "-l",
                  os.path.join(self.dir, "log"), "-w", "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                  "-c fsync=off", "start")

    def cleanup(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
