"""Contracts every metadata store fulfils.

A store keeps file records and directory entries.  All POSIX rules live in
``MetadataService``, which composes the primitives of ``ITransaction`` inside
``IMetadataStore.transact``; a store only has to make each transaction atomic
and isolated.  That keeps the rules in one place for every backend.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class ITransaction(Interface):
    """Primitive reads and writes inside one atomic transaction (synchronous).

    Writes become visible to other transactions only when the function passed to
    ``transact`` returns; if it raises, none of them take effect.
    """

    def get(fileid):
        """Return the FileRecord for ``fileid``, or None if there is none."""

    def put(record):
        """Insert or replace ``record`` (keyed by its fileid)."""

    def delete(fileid):
        """Remove the record for ``fileid`` (its entries must already be gone)."""

    def new_fileid():
        """Allocate a file id never used before in this store."""

    def claim_fileid(fileid):
        """If ``new_fileid`` never returned ``fileid`` (nor a later id), mark it and every
        id below it used and return True; else return False.  WAL replay re-creates a
        file the store lost only when this is True."""

    def lookup(dir_id, name):
        """Return the fileid that ``name`` (bytes) names in ``dir_id``, or None."""

    def add_entry(dir_id, name, fileid):
        """Add the entry ``name`` -> ``fileid`` to ``dir_id``; return its cookie (> 2)."""

    def remove_entry(dir_id, name):
        """Remove the entry ``name`` from ``dir_id`` (it must exist)."""

    def list_entries(dir_id, after_cookie, limit, plus=False):
        """Return ``(entries, eof)``: up to ``limit`` ``(DirEntry, FileRecord | None)`` pairs
        with cookie > ``after_cookie`` in cookie order (records only with ``plus``, fetched
        in the same query where the backend can), and True when no entries follow."""

    def has_entries(dir_id):
        """True if ``dir_id`` holds at least one entry."""

    def get_root(share):
        """Return the root fileid of ``share`` (a name), or None."""

    def set_root(share, fileid):
        """Record ``fileid`` as the root of ``share``."""

    def add_usage(files, nbytes):
        """Adjust the store's file count and logical byte count by the deltas given."""

    # -- IObjectStore: content-addressed blocks for deduplication ---------------

    def block_refcount(digest):
        """Return the reference count of the block with SHA-256 ``digest`` (0 if unknown)."""

    def block_incref(digest, size):
        """Add a reference to block ``digest`` of ``size`` bytes; return the new count."""

    def block_decref(digest):
        """Drop a reference; return the new count.  At 0 the block's entry is gone and its
        content may be collected from the block store."""

    def block_totals():
        """Return (number of blocks, bytes in them) over all referenced blocks."""

    def object_blocks(content_id):
        """Return ``{block index: digest}`` for a file's content."""

    def set_object_block(content_id, index, digest):
        """Record that block ``index`` of ``content_id`` is ``digest`` (None removes it)."""


class IMetadataStore(Interface):
    """A named metadata backend, shared by the shares that name it."""

    name = Attribute("The store's configured name.")
    lazy_commits = Attribute(
        "True if a write with ``durable`` False skips an fsync that a later durable "
        "transaction or ``sync`` makes up (so a crash of the machine can lose it, and every "
        "transaction after it); False if every commit is durable, or none survives a "
        "restart (memory).")

    def transact(fn, write=True, durable=True):
        """Run ``fn(txn)`` with an ITransaction; return a Deferred firing with its result.

        With ``write`` False the function only reads.  Errors ``fn`` raises are
        passed on through the Deferred and leave the store unchanged.  A write with
        ``durable`` False must survive a crash of the process but may be lost with the
        machine until the next durable transaction or ``sync``.
        """

    def sync():
        """Return a Deferred firing once every earlier transaction is on stable storage."""

    def get(fileid):
        """Return a Deferred firing with the FileRecord for ``fileid`` or None."""

    def usage():
        """Return a Deferred firing with (files, logical bytes) in this store."""

    def close():
        """Release resources; return a Deferred."""
