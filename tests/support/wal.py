"""A WAL writer thread held (or failing) on demand, for tests of what waits for it."""

from __future__ import annotations

import threading

from twisted.python.failure import Failure

from dittofs.metadata.errors import StoreIOError


def gate_wal_writer(wal, fail=False):
    """Hold the WAL writer thread before each batch until the returned event is set; with
    ``fail``, the first batch then fails as a write error would."""
    opened = threading.Event()
    real = wal.writer.process  # what the writer thread calls per batch
    failed = []

    def gated(batch):
        opened.wait(10)
        if fail and not failed:
            failed.append(batch)
            return [(False, Failure(StoreIOError("WAL: [Errno 5] EIO")))] * len(batch)
        return real(batch)

    wal.writer.process = gated
    return opened


def failing_wal_writer(wal):
    """Fail every batch of the WAL writer (inline ones too) until the returned event is
    set, as a disk returning EIO for a while would."""
    healed = threading.Event()
    real = wal.writer.process

    def failing(batch):
        if healed.is_set():
            return real(batch)
        return [(False, Failure(StoreIOError("WAL: [Errno 5] EIO")))] * len(batch)

    wal.writer.process = failing
    return healed
