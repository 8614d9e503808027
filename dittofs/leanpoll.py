"""A leaner turn of the epoll reactor's loop, installed when the server starts.

Twisted's ``EPollReactor.doPoll`` hands every ready descriptor to ``doRead``/``doWrite``
through ``log.callWithLogger``: the selectable's ``logPrefix()``, a copy of the legacy
log context dictionary and a push and pop on the context tracker, ~2.4 us per event
here.  A request/response server meets one event per request, and a small NFS call
(GETATTR) costs ~26 us of server CPU in all, so that wrapper alone was ~8% of it.  What
it sets is the "system" prefix of ``twisted.python.log`` messages; ours go through
``twisted.logger`` with their own namespaces.

Errors are handled as before: ``_doReadOrWrite`` catches what ``doRead``/``doWrite``
raise (it logs them and drops that connection); anything escaping it is logged here and
the loop goes on with the next descriptor.  The reactor is left alone unless it is
exactly the epoll reactor with the attributes this relies on.

Busy polling (``spin``, seconds; ``server.busy_poll_us``): after a turn that handled
events, the next turn that would sleep first polls without blocking for up to ``spin``
(never past its timeout), then sleeps as before.  A client waiting for each reply sends
its next call a few tens of microseconds after the last one left; sleeping in between
costs a sleep and a wake-up of the CPU, which on a virtual machine (an idle vCPU halts)
costs more than the call itself: measured here with `scripts/bench rpc`, 1 client,
GETATTR 17,000 -> 30,000 calls/s and the server's CPU per call 50 -> 33 us.  A turn that
handled nothing (a timer, an idle server) sleeps at once, so an idle server does not
spin.  The reactor gives up the GIL inside every poll, but a worker thread waiting for it
seldom gets it in those instants (it must first be woken): the server spins only while no
call is out in a worker thread (``may_spin``: dittofs.threads.idle), as a spin would keep
an fsync's result from coming back, and an upload from going on.  Spinning stops paying when
the clients are slower than the spin (the CPU it burns is then taken from them on a busy
machine): after MAX_MISSES fruitless spins in a row the loop sleeps at once again, and
tries a spin once in PROBE_EVERY turns.

``quiet()`` tells a caller on the reactor thread whether anything waits for the loop (a
ready descriptor: a request come in, a worker thread's result, a socket that can take
queued output), so that short blocking work can be done at once when nothing would wait
for it: the fsyncs of the WAL (dittofs.payload.wal) and of the LMDB metadata store.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

log = Logger(namespace="dittofs.reactor")

_NEEDS = ("_poller", "_selectables", "_doReadOrWrite", "doPoll", "_internalReaders")
#: After this many spins in a row found nothing (clients that take longer than the spin
#: to send their next call, such as a Python SMB client), turns sleep at once, but for one
#: spin in PROBE_EVERY that finds out whether calls come sooner again.
MAX_MISSES = 8
PROBE_EVERY = 64

#: ``quiet`` holds only after this long with events from one descriptor alone (the
#: reactor's own waker aside).
SOLO_SECONDS = 0.01


class _Activity:
    """What ``quiet`` needs of the reactor ``install`` last changed."""

    def __init__(self) -> None:
        self.poll: Callable[..., list] | None = None  # its epoll object's poll
        self.last_fd = -1  # the descriptor of the last event (the waker's aside)
        self.since = 0.0  # when an event last came from another descriptor than the one before


_activity = _Activity()


def quiet() -> bool:
    """Nothing waits for the loop and nobody else is about to: no descriptor is ready and,
    for SOLO_SECONDS, every event came from one descriptor (one client's connection, the
    one being served).  With other clients active, one of them would likely send a call
    while the caller blocked.  False where ``install`` did not take."""
    a = _activity
    if a.poll is None or time.monotonic() - a.since < SOLO_SECONDS:
        return False
    try:
        return not a.poll(0, 1)
    except (OSError, ValueError):  # ValueError: that epoll object was closed
        return False


def install(reactor: Any, spin: float = 0.0,
            may_spin: Callable[[], bool] | None = None) -> bool:
    """Make ``reactor``'s loop turn the lean one, busy polling for up to ``spin``
    seconds after activity (0: never) when ``may_spin()`` (if given) says so; False
    (nothing changed) if it is not Twisted's epoll reactor as this module knows it."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # no epoll on this platform
        return False
    if type(reactor) is not EPollReactor or not all(hasattr(reactor, a) for a in _NEEDS):
        return False

    now = time.monotonic
    hot = False  # the last turn handled events
    misses = 0  # spins in a row that ended with nothing to do
    skipped = 0  # spins skipped since the last one

    def do_poll(timeout: float | None) -> None:
        nonlocal hot, misses, skipped
        selectables = reactor._selectables
        poll = reactor._poller.poll
        most = len(selectables)
        try:
            spinning = hot and spin and timeout != 0 and (may_spin is None or may_spin())
            if spinning and misses >= MAX_MISSES:
                skipped += 1
                if skipped < PROBE_EVERY:
                    spinning = False
                else:
                    skipped = 0
            if not spinning:
                events = poll(-1 if timeout is None else timeout, most)
            else:
                events = poll(0, most)
                if not events:
                    start = now()
                    end = start + (spin if timeout is None else min(spin, timeout))
                    while not events and now() < end:
                        events = poll(0, most)
                    if events:
                        misses = 0
                    else:
                        misses += 1
                        if timeout is None:
                            events = poll(-1, most)
                        elif (left := timeout - (now() - start)) > 0:
                            events = poll(left, most)
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        hot = bool(events)
        handle = reactor._doReadOrWrite
        activity = _activity
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            if fd != activity.last_fd and selectable not in internal:
                activity.last_fd = fd
                activity.since = now()
            try:
                handle(selectable, fd, event)
            except Exception:
                log.failure("reactor: unhandled error from {selectable!r}",
                            selectable=selectable)

    internal = reactor._internalReaders
    reactor.doIteration = reactor.doPoll = do_poll
    _activity.__init__()
    _activity.poll = reactor._poller.poll
    return True
