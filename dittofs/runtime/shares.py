"""Shares: what each export is backed by, who may reach it, and who is mounted."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from dittofs.metadata.permissions import squash
from dittofs.metadata.redo import pack_created, pack_unlinked, pack_written
from dittofs.metadata.service import Created
from dittofs.metadata.types import FileType, Identity

LEVEL_ORDER = {"none": 0, "read": 1, "read-write": 2, "admin": 3}


def content_id(store_name: str, fileid: int) -> str:
    """The payload key of a file: unique across every store, stable across restarts."""
    return f"{store_name}/{fileid:016x}"


def owned_fileid(store_name: str, cid: str) -> int | None:
    """The fileid a content id was made from (content_id), if it was made for a file of
    the metadata store ``store_name``; None otherwise."""
    name, sep, hexid = cid.rpartition("/")
    if not sep or len(hexid) != 16 or name != store_name:
        return None
    try:
        return int(hexid, 16)
    except ValueError:
        return None


def owner_exists(store: Any) -> Any:
    """For the payload service's WAL replay: whether the file a content id belongs to still
    exists in ``store`` (None: not one of its content ids, so no answer)."""
    async def exists(cid: str) -> bool | None:
        fileid = owned_fileid(store.name, cid)
        if fileid is None:
            return None
        return (await store.get(fileid)) is not None
    return exists


def redo_hook(store: Any, redo: Any) -> Any:
    """For the payload service's WAL replay: hand a record logged for a file of ``store``
    (written attributes, a creation, an unlink) to ``redo(store, fileid, data)``, one of
    metadata.redo's restore_* functions, which redoes the change if the store lost it;
    records of other stores' files are not this store's to redo."""
    async def restore(cid: str, data: bytes) -> None:
        fileid = owned_fileid(store.name, cid)
        if fileid is not None:
            await redo(store, fileid, data)
    return restore


@dataclass
class Share:
    """One exported tree: its stores, root directory and access policy."""

    name: str
    sid: int
    store: Any  # IMetadataStore
    payload: Any  # IPayloadService
    durability: str = "local"  # writeback | local | remote
    read_only: bool = False
    root_squash: bool = True
    all_squash: bool = False
    anon_uid: int = 65534
    anon_gid: int = 65534
    networks: list = field(default_factory=lambda: [ipaddress.ip_network("0.0.0.0/0"),
                                                     ipaddress.ip_network("::/0")])
    root_id: int = 0
    guest_ok: bool = False  # SMB anonymous sessions may connect
    smb_signing_required: bool = False  # SMB requests to it must be signed
    # Control-plane permissions: {"users": {uid: level}, "groups": {gid: level}}, or None
    # when the share has none (then only the Unix permission bits decide).
    acl: dict | None = None
    _allowed: dict = field(default_factory=dict, repr=False, compare=False)

    def level(self, uid: int, gid: int, gids: tuple[int, ...] = ()) -> str:
        """none | read | read-write | admin for a client identity (before squashing)."""
        if self.acl is None:
            return "read-write"
        lvl = self.acl["users"].get(uid)
        if lvl is not None:
            return lvl
        best = "none"
        for g in (gid, *gids):
            lg = self.acl["groups"].get(g)
            if lg is not None and LEVEL_ORDER[lg] > LEVEL_ORDER[best]:
                best = lg
        return best

    @property
    def fsid(self) -> int:
        return self.sid

    @property
    def synchronous(self) -> bool:
        """Whether replies wait for stable storage where the protocol asks for it: the
        namespace changes, stable writes, truncates, deletes, COMMIT and FLUSH (every tier
        but writeback, where the background sync every ``wal_sync_ms`` does it all)."""
        return self.durability != "writeback"

    async def flush(self, fileid: int) -> None:
        """Make what was acknowledged of a file durable per the tier (NFS COMMIT, SMB
        FLUSH): the WAL (remote: the block store) and the metadata store, synced at once.

        In the local tier the metadata a COMMIT must keep is what unstable writes changed
        without an fsync (size, times, mode: commit_write); everything else that is not
        durable at once is covered by the WAL or synced by its own request.  So the record
        as it is now goes into the WAL with the content, one fsync for both, instead of a
        second fsync of the metadata store; replay puts it back if the store lost it."""
        if not self.synchronous:
            return
        cid = self.content_id(fileid)
        if self.durability == "local":
            attrs = None
            if self._redo_in_wal:
                rec = await self.store.get(fileid)
                attrs = None if rec is None else pack_written(rec)
            if await self.payload.flush(cid, False, attrs):
                return
            await self.store.sync()
            return
        flushed = defer.ensureDeferred(self.payload.flush(cid, True))
        try:
            await self.store.sync()
        finally:
            await flushed

    async def flush_namespace(self) -> None:
        """An SMB FLUSH of a directory: make durable the creates and deletes SMB left to
        the next WAL sync (see finish_create); every other namespace change was durable
        when it was answered."""
        if self.synchronous and self.payload is not None:
            await self.payload.sync_log()

    def logs_creates(self, ftype: int) -> bool:
        """Whether creating a file of ``ftype`` here is made durable through the WAL (see
        finish_create) rather than by the metadata store's own fsync: regular files in
        the local tier, on a store whose non-durable commits skip an fsync."""
        return ftype == FileType.REG and self._redo_in_wal

    async def finish_create(self, dir_id: int, name: bytes, made: Created,
                            sync: bool = True) -> None:
        """After a create committed with ``durable=False`` (logs_creates): make it durable.
        A new file's creation goes into the WAL, synced (a WAL fsync over laid-down
        zeros instead of a metadata fsync and a hand-off to its writer); replay creates
        it again if the store lost it.  Opening an existing file (UNCHECKED, or an
        exclusive retransmission) may have changed it: the store is synced.

        ``sync`` False (SMB, where only FLUSH and WRITE_THROUGH ask for stable storage,
        as Samba and Windows have it): a new file's record is written, not synced; the
        next WAL sync makes it durable (a FLUSH of any file, or the background round)."""
        if not made.existed and await self.payload.log_create(
                self.content_id(made.file.fileid), pack_created(dir_id, name, made), sync):
            return
        await self.store.sync()

    @property
    def _redo_in_wal(self) -> bool:
        """Whether a metadata change committed here without an fsync is made durable by a
        record in the payload's WAL instead (written attributes, a creation, an unlink):
        the local tier, a payload that keeps its block maps in this store (its replay
        restores into it and its syncs cover it), and a store whose non-durable commits
        skip an fsync (not PostgreSQL, whose commits are all durable, nor the memory
        store, which nothing is replayed into)."""
        return self.durability == "local" and self._maps_here and self.store.lazy_commits

    @property
    def _maps_here(self) -> bool:
        """Whether the payload keeps its block maps in this share's metadata store: its
        syncs and its WAL replay then cover this store's changes too."""
        return self.payload.objects is self.store

    def content_id(self, fileid: int) -> str:
        return content_id(self.store.name, fileid)

    async def finish_unlink(self, freed: Any, dir_id: int | None = None,
                            name: bytes | None = None, sync: bool = True) -> None:
        """After REMOVE, RMDIR, a RENAME or an SMB delete committed with ``durable=False``:
        drop the content of ``freed``, the record whose last link went (None if none did),
        if it is a regular file, then (synchronous tiers) make the change durable.

        When ``name`` was removed from directory ``dir_id`` (not a rename), the local tier
        makes the change durable in the WAL: the payload's delete record carries the
        unlink, synced, and replay redoes it if the metadata store lost it (a WAL fsync
        over laid-down zeros instead of a metadata fsync and a hand-off to its writer).
        Otherwise one metadata fsync does both: the durable block-map drop covers the
        namespace change committed before it, so no sync follows (one would wait for
        another fsync whenever other requests committed in between).

        ``sync`` False (an SMB delete, see finish_create): where the WAL record carries
        the unlink it is written, not synced, and the next WAL sync makes it durable;
        other changes are made durable as above."""
        if freed is not None and freed.ftype == FileType.REG:
            unlinked = None
            if name is not None and self._redo_in_wal:
                unlinked = pack_unlinked(dir_id, name, freed.ctime)  # ctime: the unlink's
            synced = await self.payload.delete(
                self.content_id(freed.fileid),
                self.synchronous and (sync or unlinked is None), unlinked)
            if synced and self._maps_here:
                return
        if self.synchronous:
            await self.store.sync()

    def client_allowed(self, host: str) -> bool:
        """Whether ``host`` is inside ``networks``; answered from a per-host cache on the
        request path (parsing the address cost ~7% of a READ's CPU)."""
        cache = self._allowed
        ok = cache.get(host)
        if ok is None:
            if len(cache) > 4096:
                cache.clear()
            ok = cache[host] = self._client_allowed(host)
        return ok

    def _client_allowed(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks if net.version == addr.version)

    def identity(self, uid: int, gid: int, gids: tuple[int, ...]) -> Identity:
        return squash(uid, gid, gids, self.root_squash, self.all_squash,
                      self.anon_uid, self.anon_gid)

    def anonymous(self) -> Identity:
        return Identity(self.anon_uid, self.anon_gid, ())


class ShareTable:
    """Shares by export path and by handle share id, plus the MOUNT table."""

    def __init__(self) -> None:
        self.by_name: dict[str, Share] = {}
        self.by_sid: dict[int, Share] = {}
        self.mounts: dict[tuple[str, str], None] = {}  # (client host, path), ordered

    def add(self, share: Share) -> None:
        if share.sid in self.by_sid and self.by_sid[share.sid].name != share.name:
            raise ValueError(f"share id collision between {share.name} and "
                             f"{self.by_sid[share.sid].name}")
        self.by_name[share.name] = share
        self.by_sid[share.sid] = share

    def remove(self, name: str) -> None:
        share = self.by_name.pop(name)
        self.by_sid.pop(share.sid, None)
        for key in [k for k in self.mounts if k[1] == name]:
            del self.mounts[key]

    def __iter__(self):
        return iter(self.by_name.values())

    def mounted(self, host: str, path: str) -> None:
        self.mounts[(host, path)] = None

    def unmounted(self, host: str, path: str | None = None) -> None:
        for key in [k for k in self.mounts if k[0] == host and (path is None or k[1] == path)]:
            del self.mounts[key]
