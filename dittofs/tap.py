"""``twistd dittofs``: command-line options and the service tree."""

from __future__ import annotations

import ctypes
import dataclasses
import sys
from typing import Any

from twisted.python import usage

from dittofs.config import ConfigError, load


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "Path to dittofs.yaml (defaults are used without one)."],
        ["data-dir", "d", None, "Directory for persistent state (overrides server.data_dir)."],
        ["nfs-port", None, None, "TCP port for NFS, MOUNT and portmap (overrides nfs.port)."],
        ["nfs-bind", None, None, "Address to listen on for NFS (overrides nfs.bind)."],
        ["smb-port", None, None, "TCP port for SMB2 (overrides smb.port)."],
    ]


def tune_malloc() -> None:
    """Keep glibc from mmapping (and page-faulting) every 1 MiB buffer anew."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def makeService(options: Any) -> Any:
    from dittofs.runtime.service import Runtime

    try:
        cfg = load(options["config"])
        if options["data-dir"]:
            cfg = dataclasses.replace(cfg, server=dataclasses.replace(
                cfg.server, data_dir=options["data-dir"]))
        nfs = cfg.nfs
        if options["nfs-port"] is not None:
            try:
                nfs = dataclasses.replace(nfs, port=int(options["nfs-port"]))
            except ValueError:
                raise ConfigError(f"--nfs-port: {options['nfs-port']!r} is not a number") from None
        if options["nfs-bind"]:
            nfs = dataclasses.replace(nfs, bind=options["nfs-bind"])
        cfg = dataclasses.replace(cfg, nfs=nfs)
        if options["smb-port"] is not None:
            try:
                port = int(options["smb-port"])
            except ValueError:
                raise ConfigError(f"--smb-port: {options['smb-port']!r} is not a number") from None
            cfg = dataclasses.replace(cfg, smb=dataclasses.replace(cfg.smb, port=port))
        tune_malloc()
        from twisted.internet import reactor

        from dittofs import leanpoll, threads
        leanpoll.install(reactor, cfg.server.busy_poll_us / 1e6, threads.idle)
        from dittofs import log
        log.apply(cfg)
        runtime = Runtime(cfg, options["config"])
    except ConfigError as e:
        sys.stderr.write(f"dittofs: configuration error: {e}\n")
        raise SystemExit(2) from None
    for kind in ("nfs", "smb"):
        if getattr(cfg, kind).enabled:
            runtime.add_adapter(kind)
    if cfg.api.enabled:
        from dittofs.control.service import ControlPlane
        ControlPlane(runtime).setServiceParent(runtime)
    if cfg.metrics.enabled:
        from dittofs.metrics_service import MetricsService
        MetricsService(runtime, cfg.metrics.bind, cfg.metrics.port).setServiceParent(runtime)
    return runtime
