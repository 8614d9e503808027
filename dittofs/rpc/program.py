"""RPC program tables: which (program, version, procedure) decodes how and runs what.

Pure data; the server bridges handler coroutines to Deferreds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from dittofs.rpc.message import AuthUnix, RpcCall
from dittofs.rpc.xdr import XdrType


class CallContext(NamedTuple):
    """What a handler knows about the call besides its arguments."""

    call: RpcCall
    client: tuple[str, int]  # (address, port) of the peer
    conn_id: int

    @property
    def cred(self) -> AuthUnix | None:
        return self.call.cred


Handler = Callable[[Any, CallContext], Awaitable[Any]]


class Procedure(NamedTuple):
    name: str
    args: XdrType
    result: XdrType
    handler: Handler


@dataclass
class Program:
    """One RPC program: its number, name and per-version procedure tables."""

    number: int
    name: str
    versions: dict[int, dict[int, Procedure]] = field(default_factory=dict)

    @property
    def low(self) -> int:
        return min(self.versions)

    @property
    def high(self) -> int:
        return max(self.versions)


def program_table(*programs: Program) -> dict[int, Program]:
    """Merge program declarations into one lookup table keyed by number."""
    table: dict[int, Program] = {}
    for prog in programs:
        if prog.number in table:
            existing = table[prog.number]
            for vers, procs in prog.versions.items():
                existing.versions.setdefault(vers, {}).update(procs)
        else:
            table[prog.number] = prog
    return table
