"""The ``dittofs`` command: init, config show/validate, start (foreground or daemon),
stop and status.  ``start`` runs ``twistd dittofs``; stop/status use its pid file."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml

from dittofs.config import Config, ConfigError, load


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            out[f.name] = _plain(v)
        if "options" in out and "type" in out:  # a StoreConfig: options inline
            out = {"type": out["type"], **out["options"]}
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _redacted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("<redacted>" if k in ("secret_key", "access_key", "password", "jwt_secret",
                                         "nt_hash") and v else _redacted(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_redacted(v) for v in data]
    return data


def _load(config: str | None) -> Config:
    try:
        return load(config)
    except ConfigError as e:
        raise click.ClickException(f"configuration error: {e}") from None


def _pidfile(cfg: Config, pidfile: str | None) -> Path:
    return Path(pidfile) if pidfile else cfg.data_path / "dittofs.pid"


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


config_option = click.option("-c", "--config", type=click.Path(dir_okay=False),
                             envvar="DITTOFS_CONFIG", help="dittofs.yaml")


@click.group()
def main() -> None:
    """Run and inspect a dittofs server."""


@main.command()
@click.argument("path", default="dittofs.yaml", type=click.Path(dir_okay=False))
@click.option("--data-dir", help="where persistent state goes")
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(path: str, data_dir: str | None, force: bool) -> None:
    """Write a configuration with every default (the embedded stores, /export)."""
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{path} exists (use --force to overwrite)")
    cfg = Config()
    if data_dir:
        cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server,
                                                                  data_dir=data_dir))
    text = ("# dittofs configuration written by `dittofs init`; etc/dittofs.yaml in the\n"
            "# source tree explains every key.\n" + yaml.safe_dump(_plain(cfg), sort_keys=False))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    _load(str(target))  # what we wrote must load
    click.echo(f"wrote {path}")


@main.group("config")
def config_group() -> None:
    """The effective configuration."""


@config_group.command("show")
@config_option
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
def config_show(config: str | None, fmt: str) -> None:
    """The configuration after defaults and DITTOFS_* variables, secrets redacted."""
    data = _redacted(_plain(_load(config)))
    click.echo(json.dumps(data, indent=1) if fmt == "json"
               else yaml.safe_dump(data, sort_keys=False).rstrip())


@config_group.command("validate")
@config_option
def config_validate(config: str | None) -> None:
    _load(config)
    click.echo("configuration is valid")


@main.command()
@config_option
@click.option("-d", "--daemon", is_flag=True, help="detach; see --pidfile and --logfile")
@click.option("--pidfile", help="default <data_dir>/dittofs.pid")
@click.option("--logfile", help="with --daemon; default <data_dir>/dittofs.log")
def start(config: str | None, daemon: bool, pidfile: str | None, logfile: str | None) -> None:
    """Start the server (twistd dittofs)."""
    cfg = _load(config)
    pid_path = _pidfile(cfg, pidfile)
    if _pid(pid_path):
        raise click.ClickException(f"already running (pid {_pid(pid_path)})")
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    twistd = str(Path(sys.executable).with_name("twistd"))
    args = [twistd, "--pidfile", str(pid_path), "--logger", "dittofs.log.observer"]
    env = dict(os.environ)
    if daemon:
        env["DITTOFS_LOGFILE"] = logfile or str(cfg.data_path / "dittofs.log")
    else:
        args.append("-n")
    args.append("dittofs")
    if config:
        args += ["--config", str(Path(config).resolve())]
    if not daemon:
        os.execv(twistd, args)
    import subprocess
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise click.ClickException(f"twistd failed: {r.stderr.strip() or r.stdout.strip()}")
    deadline = time.monotonic() + 10
    while not _pid(pid_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    click.echo(f"started (pid {_pid(pid_path)})")


@main.command()
@config_option
@click.option("--pidfile")
@click.option("--timeout", default=60, show_default=True, help="seconds to wait")
def stop(config: str | None, pidfile: str | None, timeout: int) -> None:
    """Stop gracefully (SIGTERM: drain, flush, exit 0)."""
    pid_path = _pidfile(_load(config), pidfile)
    pid = _pid(pid_path)
    if pid is None:
        raise click.ClickException("not running")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            click.echo(f"stopped (pid {pid})")
            return
        time.sleep(0.1)
    raise click.ClickException(f"pid {pid} still running after {timeout}s")


@main.command()
@config_option
@click.option("--pidfile")
def status(config: str | None, pidfile: str | None) -> None:
    """Whether the server runs, and where it listens."""
    cfg = _load(config)
    pid = _pid(_pidfile(cfg, pidfile))
    if pid is None:
        click.echo("not running")
        sys.exit(3)
    parts = [f"running (pid {pid})"]
    if cfg.nfs.enabled:
        parts.append(f"nfs {cfg.nfs.bind}:{cfg.nfs.port}")
    if cfg.smb.enabled:
        parts.append(f"smb {cfg.smb.bind}:{cfg.smb.port}")
    if cfg.api.enabled:
        parts.append(f"api {cfg.api.bind}:{cfg.api.port}")
    click.echo(", ".join(parts))


if __name__ == "__main__":
    main()
