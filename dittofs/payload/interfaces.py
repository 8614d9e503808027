"""Contracts of the payload (file content) layer."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IPayloadService(Interface):
    """File content addressed by a content id; file sizes are the metadata layer's.

    Every method returns a Deferred (or is a coroutine).  Content never written reads as
    zeros.  ``sync`` asks that the change be on local stable storage (the WAL) before
    the result fires; ``remote`` that it be in the block store.
    """

    name = Attribute("The service's name (its block store's).")

    def start():
        """Replay what the WAL holds and begin background uploads."""

    def read_at(content_id, offset, count):
        """Fire with exactly ``count`` bytes from ``offset`` (zeros past what was written);
        the caller clamps ``count`` to the file size."""

    def write_at(content_id, offset, data, sync=True, unstable=False):
        """Store ``data`` (bytes-like) at ``offset``; fire once acknowledged.  A whole block
        of an immutable buffer (``bytes``, or a view of it) may be kept by the cache as it
        is; a mutable one is copied, and must not change until the write fires.
        ``unstable`` (not with ``sync``): the client keeps the bytes until a flush of the
        file succeeds and writes them again after a restart (NFS UNSTABLE): it may fire
        once they are in the cache, before their WAL record is written; the next flush
        waits for that record and fails if it could not be written."""

    def truncate(content_id, size, sync=True):
        """Discard content at and beyond ``size``."""

    def flush(content_id, remote=False, attrs=None):
        """Fire once everything written to ``content_id`` is durable: in the WAL, or with
        ``remote`` in the block store (NFS COMMIT, SMB FLUSH).  ``attrs`` (bytes, opaque
        here): the file's metadata, to be made durable with the content where a WAL can
        hold it (handed back at replay, see ``restore_attrs``).  Fires True if it was,
        False if the caller must make its metadata durable itself."""

    def log_create(content_id, created, sync=True):
        """Fire True once ``created`` (bytes, opaque here: a file's creation, committed to
        the metadata store without an fsync) is durable in a synced WAL record, handed
        back at replay (see ``restore_create``); False if there is no WAL to hold it.
        ``sync`` False: once the record is written; the next WAL sync makes it durable
        (``sync_log``, a flush of any file, the background round)."""

    def sync_log():
        """Fire once every WAL record written so far is durable (an SMB FLUSH of a
        directory: the creates and deletes logged without a sync)."""

    def delete(content_id, sync=True, unlinked=None):
        """Forget all content of ``content_id``; unreferenced blocks are collected.  With
        ``sync`` the change is durable when this fires, and True: committed with an fsync
        of the metadata store the service keeps its block maps in, which also covers
        every change committed to that store before, or (``unlinked``, bytes, opaque
        here: the namespace change that freed the file) logged with it in a WAL record,
        handed back at replay if that store lost it (see ``restore_unlink``): synced with
        ``sync``, else durable with the next WAL sync; fires True then too."""

    def stats():
        """Fire with a dict: logical_bytes, stored_bytes, dedup_ratio, cache and WAL sizes."""

    def close():
        """Upload what is dirty and release resources."""


class IBlockStore(Interface):
    """Where uploaded blocks live, addressed by key (``<namespace>/<sha256 hex>``).

    Every method returns a Deferred; blocking stores do their I/O in their own pool.
    """

    name = Attribute("The store's configured name.")

    def put(key, data):
        """Store ``data`` (bytes-like, unchanging) under ``key``, atomically: a reader sees all
        or nothing."""

    def get(key):
        """Fire with the bytes stored under ``key``; fail with KeyError if there are none."""

    def delete(key):
        """Remove ``key`` (no error if it is absent)."""

    def keys():
        """Fire with a list of every key stored (for garbage checks and tests)."""

    def close():
        """Release resources."""
