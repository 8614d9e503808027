"""Make a directory's entries durable: a file created, renamed or deleted in it survives a
power loss only once the directory itself is fsynced."""

from __future__ import annotations

import os


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
