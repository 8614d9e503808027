"""Unix permission checks and identity squashing (pure functions)."""

from __future__ import annotations

import stat

from dittofs.metadata.types import FileRecord, FileType, Identity

R, W, X = 4, 2, 1
NOBODY = 65534


def in_group(ident: Identity, gid: int) -> bool:
    return ident.gid == gid or gid in ident.gids


def allowed(ident: Identity, rec: FileRecord, want: int) -> bool:
    """True if ``ident`` may access ``rec`` for every bit of ``want`` (R|W|X)."""
    mode = rec.mode
    if ident.uid == 0:
        if want & X and rec.ftype != FileType.DIR and not mode & 0o111:
            return False
        return True
    if ident.uid == rec.uid:
        bits = (mode >> 6) & 7
    elif in_group(ident, rec.gid):
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def granted(ident: Identity, rec: FileRecord) -> int:
    """The R|W|X bits ``ident`` holds on ``rec``."""
    return (R if allowed(ident, rec, R) else 0) | (W if allowed(ident, rec, W) else 0) | (
        X if allowed(ident, rec, X) else 0)


def sticky_allows(ident: Identity, directory: FileRecord, victim: FileRecord) -> bool:
    """In a sticky directory only root and the owners of the directory or entry may unlink."""
    if not directory.mode & stat.S_ISVTX:
        return True
    return ident.uid in (0, directory.uid, victim.uid)


def squash(uid: int, gid: int, gids: tuple[int, ...], root_squash: bool, all_squash: bool,
           anon_uid: int = NOBODY, anon_gid: int = NOBODY) -> Identity:
    """Map a client's credential to the identity the share acts for."""
    if all_squash or (root_squash and uid == 0):
        return Identity(anon_uid, anon_gid, ())
    if root_squash:
        gids = tuple(anon_gid if g == 0 else g for g in gids)
        if gid == 0:
            gid = anon_gid
    return Identity(uid, gid, gids)
