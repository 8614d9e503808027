"""NFS handlers over the services, without a network: export policy per request."""

from __future__ import annotations

import ipaddress

from twisted.internet import defer

from dittofs.metadata.service import MetadataService
from dittofs.metadata.stores.memory import MemoryMetadataStore
from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat
from dittofs.nfs.handlers import NfsHandlers
from dittofs.nfs.handles import HandleCodec
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from dittofs.rpc.message import AuthUnix, RpcCall
from dittofs.rpc.program import CallContext
from dittofs.runtime.shares import Share, ShareTable


def result(coro):
    out = []
    defer.ensureDeferred(coro).addBoth(out.append)
    return out[0]


def ctx(host="127.0.0.1", uid=1000):
    call = RpcCall(1, 100003, 3, 1, 1, AuthUnix(0, b"h", uid, uid, ()), 0)
    return CallContext(call, (host, 800), 1)


def setup(networks):
    md = MetadataService()
    shares = ShareTable()
    share = Share("/s", 9, MemoryMetadataStore("m"), None,
                  networks=[ipaddress.ip_network(n) for n in networks])
    share.root_id = result(md.ensure_root(share, 0, 0, 0o777))
    shares.add(share)
    handles = HandleCodec(b"k" * 32)
    return NfsHandlers(shares, md, handles), handles.make(9, share.root_id)


def test_handle_use_from_a_network_not_allowed_is_refused():
    h, root = setup(["10.0.0.0/8"])
    st, body = result(h.getattr(root, ctx("127.0.0.1")))
    assert st == NfsStat.NFS3ERR_ACCES
    st, body = result(h.getattr(root, ctx("10.1.2.3")))
    assert st == NfsStat.NFS3_OK
    st, _ = result(h.create(C.CreateArgs(DirOpArgs3(root, b"x"), (0, EMPTY_SATTR)),
                            ctx("192.168.0.1")))
    assert st == NfsStat.NFS3ERR_ACCES


def test_ipv4_mapped_ipv6_clients_match_ipv4_networks():
    h, root = setup(["127.0.0.0/8"])
    assert result(h.getattr(root, ctx("::ffff:127.0.0.1")))[0] == NfsStat.NFS3_OK


def test_unknown_share_is_stale():
    h, _ = setup(["0.0.0.0/0"])
    other = h.handles.make(12345, 1)
    assert result(h.getattr(other, ctx()))[0] == NfsStat.NFS3ERR_STALE


def test_unexpected_errors_become_serverfault():
    h, root = setup(["0.0.0.0/0"])

    async def broken(share, fid):
        raise RuntimeError("store bug")
    h.md.getattr = broken
    assert result(h.getattr(root, ctx()))[0] == NfsStat.NFS3ERR_SERVERFAULT
