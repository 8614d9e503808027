"""The lean epoll loop turn: descriptors still get their events, errors stay contained."""

from __future__ import annotations

import socket
import time

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


class RecordingPoller:
    """The reactor's epoll object, recording the timeout of every poll."""

    def __init__(self, poller) -> None:
        self.poller = poller
        self.timeouts: list[float] = []

    def poll(self, timeout, maxevents):
        self.timeouts.append(timeout)
        return self.poller.poll(timeout, maxevents)

    def __getattr__(self, name):
        return getattr(self.poller, name)


@pytest.fixture
def spinning(reactor, monkeypatch):
    """start(spin, may_spin, window): the lean loop with busy polling up to ``spin``, its
    first spin ``window`` long (default: START_SPIN), one reader whose first call was
    handled (the loop is hot), its poller recording timeouts; -> (recorder, reader, the
    socket the test sends from)."""
    socks = []

    def start(spin: float, may_spin=None, window: float | None = None):
        if window is not None:
            monkeypatch.setattr(leanpoll, "START_SPIN", window)
        assert leanpoll.install(reactor, spin, may_spin)
        rec = reactor._poller = RecordingPoller(reactor._poller)
        a, b = pair()
        socks.extend((a, b))
        reader = Reader(a)
        reactor.addReader(reader)
        b.send(b"first")
        reactor.doIteration(1.0)
        assert reader.got == b"first"
        rec.timeouts.clear()
        return rec, reader, b

    yield start
    reactor.removeAll()
    for s in socks:
        s.close()


def test_after_activity_a_call_that_comes_soon_is_caught_without_sleeping(reactor, spinning):
    import threading
    rec, reader, b = spinning(0.5, window=0.5)
    threading.Timer(0.02, b.send, (b"second",)).start()
    reactor.doIteration(2.0)
    assert reader.got == b"firstsecond"
    assert len(rec.timeouts) > 1 and set(rec.timeouts) == {0}  # never slept


def test_the_spin_gives_way_to_sleep_for_the_rest_of_the_timeout(reactor, spinning):
    rec, reader, b = spinning(0.02, window=0.02)
    started = time.monotonic()
    reactor.doIteration(0.3)
    took = time.monotonic() - started
    assert set(rec.timeouts[:-1]) == {0}
    assert 0.2 < rec.timeouts[-1] <= 0.28  # what is left of 0.3 after >= 0.02 of spinning
    assert 0.25 < took < 1.0
    rec.timeouts.clear()
    reactor.doIteration(0.05)  # the last turn handled nothing: it sleeps at once
    assert rec.timeouts == [0.05]


def test_the_spin_never_outlasts_the_turns_timeout(reactor, spinning):
    rec, reader, b = spinning(5.0, window=5.0)
    started = time.monotonic()
    reactor.doIteration(0.01)  # a timer due in 10 ms
    assert time.monotonic() - started < 1.0
    assert set(rec.timeouts) == {0}
    rec.timeouts.clear()
    reactor.doIteration(0)  # work waiting: one non-blocking poll, no spin
    assert rec.timeouts == [0]


def test_without_a_spin_every_turn_sleeps_at_once(reactor, spinning):
    rec, reader, b = spinning(0.0)
    reactor.doIteration(0.05)
    assert rec.timeouts == [0.05]


def hot_then_idle(reactor, rec, b, timeout: float = 0.01) -> list:
    """A call handled (the loop is hot), then a turn in which nothing comes for
    ``timeout``: the timeouts that turn polled with (0 first: it spun)."""
    b.send(b"x")
    reactor.doIteration(1.0)
    rec.timeouts.clear()
    reactor.doIteration(timeout)
    return list(rec.timeouts)


def call_after(reactor, rec, b, delay: float) -> list:
    """A call handled (the loop is hot), then one turn in which the next call comes
    ``delay`` seconds later: the timeouts that turn polled with (all 0: the spin caught
    it; ending with the rest of 1.0: it slept)."""
    import threading
    b.send(b"x")
    reactor.doIteration(1.0)
    rec.timeouts.clear()
    threading.Timer(delay, b.send, (b"y",)).start()
    reactor.doIteration(1.0)
    return list(rec.timeouts)


def test_the_window_halves_to_nothing_while_calls_come_later_than_the_longest_spin(
        reactor, spinning, monkeypatch):
    monkeypatch.setattr(leanpoll, "thread_time", time.monotonic)  # never preempted
    rec, reader, b = spinning(0.05)  # a ceiling of 50 ms; the window starts at START_SPIN
    assert leanpoll.START_SPIN == 100e-6 and leanpoll.MIN_SPIN == 25e-6
    for _ in range(3):  # 100, 50, 25 us: each spun in vain, then slept past 50 ms
        turn = hot_then_idle(reactor, rec, b, 0.1)
        assert turn[0] == 0 and 0.09 < turn[-1] < 0.1
    assert hot_then_idle(reactor, rec, b, 0.1) == [0.1]  # no window left: sleeps at once
    # A call that comes within the ceiling of a sleep gives a spin the smallest window back.
    assert call_after(reactor, rec, b, 0.005) == [1.0]
    assert hot_then_idle(reactor, rec, b, 0.1)[0] == 0


def test_the_window_doubles_until_the_spin_catches_the_next_call(reactor, spinning, monkeypatch):
    # Never preempted (the timer thread sending the calls takes the GIL from the spin now
    # and then, which is what a preemption looks like).
    monkeypatch.setattr(leanpoll, "thread_time", time.monotonic)
    rec, reader, b = spinning(0.2)
    turns = [call_after(reactor, rec, b, 0.02)]
    while turns[-1][-1] and len(turns) < 20:  # slept: a longer spin would have caught it
        turns.append(call_after(reactor, rec, b, 0.02))
    # 100 us doubled 8 times is 25.6 ms: the first spin long enough for a call 20 ms away
    # (more if timers fired late on a busy machine).
    assert 8 <= len(turns) - 1 < 20 and all(t[0] == 0 for t in turns)
    assert set(turns[-1]) == {0} and reader.got.endswith(b"y")
    for _ in range(3):  # and it stays: calls keep coming within it
        assert set(call_after(reactor, rec, b, 0.02)) == {0}


def test_a_spin_that_loses_the_cpu_gives_way_to_sleep_for_a_while(reactor, spinning, monkeypatch):
    # The reactor thread's CPU clock stands still: every spin looks preempted throughout.
    monkeypatch.setattr(leanpoll, "thread_time", lambda: 1.0)
    monkeypatch.setattr(leanpoll, "START_SPIN", 0.005)
    rec, reader, b = spinning(0.05)
    turn = hot_then_idle(reactor, rec, b)
    assert turn[0] == 0 and turn[-1] <= 0.005  # spun 5 ms, off the CPU all along
    # Then every turn after a call sleeps at once, even for calls that come soon: the y turn
    # of each call_after, and from the second on its x turn too (after y's), use one each.
    for _ in range(leanpoll.COOLDOWN // 2):
        assert call_after(reactor, rec, b, 0.002) == [1.0]
    assert hot_then_idle(reactor, rec, b) == [0.01]  # the last one; no window now, and a
    assert call_after(reactor, rec, b, 0.002) == [1.0]  # call within the ceiling...
    assert hot_then_idle(reactor, rec, b)[0] == 0  # ...has spinning tried again


def test_no_spin_while_a_worker_thread_may_need_the_gil(reactor, spinning):
    import threading
    busy = [True]
    rec, reader, b = spinning(0.5, lambda: not busy[0], window=0.5)
    reactor.doIteration(0.05)  # hot, but a worker is out: sleeps at once
    assert rec.timeouts == [0.05]
    busy[0] = False
    b.send(b"x")
    reactor.doIteration(1.0)
    rec.timeouts.clear()
    threading.Timer(0.02, b.send, (b"y",)).start()
    reactor.doIteration(2.0)
    assert reader.got.endswith(b"y") and set(rec.timeouts) == {0}  # spun


def test_quiet_only_with_nothing_ready_and_one_descriptor_served_for_a_while(reactor, monkeypatch):
    monkeypatch.setattr(leanpoll, "SOLO_SECONDS", 0.05)
    assert leanpoll.install(reactor)
    (a1, b1), (a2, b2) = pair(), pair()
    r1, r2 = Reader(a1), Reader(a2)
    reactor.addReader(r1)
    reactor.addReader(r2)
    reactor.installWaker()

    def served(sock, reader, data):
        sock.send(data)
        assert not leanpoll.quiet()  # a call waits for the loop
        reactor.doIteration(1.0)
        assert reader.got.endswith(data)

    served(b1, r1, b"one")
    assert not leanpoll.quiet()  # only just served a descriptor other than the last one
    time.sleep(0.06)
    assert leanpoll.quiet()
    served(b1, r1, b"again")
    assert leanpoll.quiet()  # the same client alone: still quiet
    reactor.wakeUp()  # a worker thread's result (the reactor's own waker)
    assert not leanpoll.quiet()
    reactor.doIteration(1.0)
    assert leanpoll.quiet()  # the waker is not another client
    served(b2, r2, b"two")
    assert not leanpoll.quiet()  # another client: one of them may call any moment
    time.sleep(0.06)
    assert leanpoll.quiet()
    reactor.removeAll()
    for s in (a1, b1, a2, b2):
        s.close()


def test_quiet_is_never_claimed_where_the_lean_loop_is_not_installed(reactor):
    leanpoll._activity.__init__()  # as in a process that never installed it
    assert not leanpoll.quiet()
    assert leanpoll.install(reactor)
    assert leanpoll.quiet()  # nothing ready, nothing served yet
    reactor._poller.close()  # the reactor it was installed on is gone
    assert not leanpoll.quiet()
