"""An embedded portmapper (RFC 1833 version 2) that describes only our own programs.

It shares the NFS port, so a client asking it finds NFS and MOUNT on that port.
SET and UNSET are refused: nobody else registers here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dittofs.nfs.const import (
    IPPROTO_TCP,
    MOUNT_PROGRAM,
    MOUNT_V3,
    NFS_PROGRAM,
    NFS_V3,
    PMAP_PROGRAM,
    PMAP_V2,
    PmapProc,
)
from dittofs.rpc.program import CallContext, Procedure, Program
from dittofs.rpc.xdr import BOOL, U32, VOID, LinkedList, struct_type

Mapping, MAPPING_T = struct_type("Mapping", [("prog", U32), ("vers", U32), ("prot", U32),
                                             ("port", U32)])
PMAPLIST_T = LinkedList(MAPPING_T)


class PortmapHandlers:
    def __init__(self, port: Callable[[], int]) -> None:
        self.port = port

    def mappings(self) -> list[Any]:
        p = self.port()
        return [Mapping(PMAP_PROGRAM, PMAP_V2, IPPROTO_TCP, p),
                Mapping(NFS_PROGRAM, NFS_V3, IPPROTO_TCP, p),
                Mapping(MOUNT_PROGRAM, MOUNT_V3, IPPROTO_TCP, p)]

    async def null(self, args: None, ctx: CallContext) -> None:
        return None

    async def refuse(self, m: Any, ctx: CallContext) -> bool:
        return False

    async def getport(self, m: Any, ctx: CallContext) -> int:
        for have in self.mappings():
            if have.prog == m.prog and have.vers == m.vers and have.prot == m.prot:
                return have.port
        return 0

    async def dump(self, args: None, ctx: CallContext) -> list:
        return self.mappings()

    def program(self) -> Program:
        procs = {
            PmapProc.NULL: Procedure("NULL", VOID, VOID, self.null),
            PmapProc.SET: Procedure("SET", MAPPING_T, BOOL, self.refuse),
            PmapProc.UNSET: Procedure("UNSET", MAPPING_T, BOOL, self.refuse),
            PmapProc.GETPORT: Procedure("GETPORT", MAPPING_T, U32, self.getport),
            PmapProc.DUMP: Procedure("DUMP", VOID, PMAPLIST_T, self.dump),
        }
        return Program(PMAP_PROGRAM, "PMAP2", {PMAP_V2: {int(k): v for k, v in procs.items()}})
