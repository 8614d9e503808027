"""The lean epoll loop turn: descriptors still get their events, errors stay contained."""

from __future__ import annotations

import socket

import pytest
from twisted.internet.error import ConnectionDone
from twisted.logger import globalLogPublisher

from dittofs import leanpoll

epollreactor = pytest.importorskip("twisted.internet.epollreactor")


class Reader:
    """A minimal read descriptor over one end of a socket pair."""

    def __init__(self, sock: socket.socket, fail_on_lost: bool = False) -> None:
        self.sock = sock
        self.got = b""
        self.lost = None
        self.fail_on_lost = fail_on_lost

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "reader"

    def doRead(self):
        data = self.sock.recv(4096)
        if not data:
            return ConnectionDone()
        self.got += data
        return None

    def connectionLost(self, reason) -> None:
        self.lost = reason
        if self.fail_on_lost:
            raise RuntimeError("connectionLost blew up")


@pytest.fixture
def reactor():
    r = epollreactor.EPollReactor()
    yield r
    r.removeAll()
    waker = getattr(r, "waker", None)
    if waker is not None:
        waker.connectionLost(None)
    r._poller.close()


def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_installs_only_on_the_epoll_reactor(reactor):
    from twisted.internet.selectreactor import SelectReactor
    other = SelectReactor()
    assert leanpoll.install(other) is False
    assert "doIteration" not in vars(other)
    assert leanpoll.install(reactor) is True
    assert vars(reactor)["doIteration"] is vars(reactor)["doPoll"]


def test_ready_descriptors_get_their_reads(reactor):
    assert leanpoll.install(reactor)
    (a1, b1), (a2, b2) = pair(), pair()
    r1, r2 = Reader(a1), Reader(a2)
    reactor.addReader(r1)
    reactor.addReader(r2)
    b1.send(b"one")
    b2.send(b"two")
    for _ in range(5):
        reactor.doIteration(0.2)
        if r1.got and r2.got:
            break
    assert (r1.got, r2.got) == (b"one", b"two")
    reactor.removeAll()
    for s in (a1, b1, a2, b2):
        s.close()


def test_an_error_escaping_one_descriptor_is_logged_and_the_others_still_served(reactor):
    assert leanpoll.install(reactor)
    (a1, b1), (a2, b2) = pair(), pair()
    bad, good = Reader(a1, fail_on_lost=True), Reader(a2)
    reactor.addReader(bad)
    reactor.addReader(good)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        b1.close()  # bad reads EOF: disconnected, and its connectionLost raises
        reactor.doIteration(0.2)
        b2.send(b"still here")
        for _ in range(5):
            reactor.doIteration(0.2)
            if good.got:
                break
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert bad.lost is not None
    assert good.got == b"still here"
    failures = [e for e in events if e.get("log_namespace") == "dittofs.reactor"]
    assert failures and failures[0]["log_failure"].check(RuntimeError)
    reactor.removeAll()
    for s in (a1, a2, b2):
        s.close()
