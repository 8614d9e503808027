"""The users SMB authenticates: a name, a Unix identity, and the NT hash NTLMv2 needs.

Until the control plane (issue 6) keeps users in its database, they come from the
``users`` section of the configuration.  Lookups are case-insensitive, as Windows names are.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class User(NamedTuple):
    name: str
    uid: int
    gid: int
    gids: tuple[int, ...]
    nt_hash: bytes


class UserDirectory:
    def __init__(self, users: list[User]) -> None:
        self.by_name = {u.name.lower(): u for u in users}

    @classmethod
    def from_config(cls, cfg: Any) -> "UserDirectory":
        return cls([User(u.name, u.uid, u.gid, tuple(u.gids), bytes.fromhex(u.nt_hash))
                    for u in cfg.users])

    def lookup(self, name: str) -> User | None:
        return self.by_name.get(name.lower())

    def replace(self, users: list[User]) -> None:
        """Swap in a new set of users (the control plane after a change)."""
        self.by_name = {u.name.lower(): u for u in users}
