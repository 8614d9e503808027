"""Contracts of the payload (file content) layer."""

from __future__ import annotations

from zope.interface import Interface


class IPayloadService(Interface):
    """File content addressed by a content id; file sizes are the metadata layer's.

    Every method returns a Deferred.  Content that was never written reads as zeros.
    """

    def read_at(content_id, offset, count):
        """Fire with up to ``count`` bytes from ``offset`` (the caller clamps to the file size);
        bytes past what was written are zeros, and the result is exactly ``count`` long."""

    def write_at(content_id, offset, data):
        """Store ``data`` (bytes-like) at ``offset``; fire with None once it is acknowledged
        per the share's durability setting."""

    def truncate(content_id, size):
        """Discard content at and beyond ``size``."""

    def flush(content_id):
        """Fire once everything written to ``content_id`` is durable (NFS COMMIT, SMB FLUSH)."""

    def delete(content_id):
        """Forget all content of ``content_id``."""

    def close():
        """Flush and release resources."""
