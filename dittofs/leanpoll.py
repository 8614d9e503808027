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
events, the next turn that would sleep first polls without blocking for a while (the
window, never past its timeout), then sleeps as before.  A client waiting for each reply
sends its next call some time after the last one left; sleeping in between costs a sleep
and a wake-up of the CPU, which on a virtual machine (an idle vCPU halts) costs more than
the call itself: measured here with `scripts/bench rpc`, 1 client, GETATTR 17,000 ->
30,000 calls/s and the server's CPU per call 50 -> 33 us; and ~125 us a request for
smbprotocol's requests, whose client takes 200-300 us between a reply and its next call.
A turn that handled nothing (a timer, an idle server) sleeps at once, so an idle server
does not spin.  The reactor gives up the GIL inside every poll, but a worker thread
waiting for it seldom gets it in those instants (it must first be woken): the server spins
only while no call is out in a worker thread (``may_spin``: dittofs.threads.idle), as a
spin would keep an fsync's result from coming back, and an upload from going on.

The window adapts to the clients, as Linux's haltpoll idle governor does for a guest's
idle CPU: ``spin`` is its ceiling.  A sleep after a spin (or instead of one) that a
call or other event ended within ``spin`` of the turn's start doubles the window (from
MIN_SPIN): a longer spin would have caught it.  A turn that waited longer than ``spin``
halves it (below MIN_SPIN: no spin): the clients are slower than any spin allowed.  A
spin that was off the CPU for more than LOST_SECONDS of its time was preempted: another
thread (a client on this machine) wanted the CPU, which the spin takes from it; the window
drops to nothing and stays there for COOLDOWN turns.

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
#: The smallest window a spin is given (one grown from nothing starts here) and the one
#: a server starts with (or ``spin``, if smaller).
MIN_SPIN = 25e-6
START_SPIN = 100e-6
#: A spin that was off the CPU for longer than this was preempted (a preemption by a
#: client costs it 250 us and more here; interrupts and clock reads, under 50 us)...
LOST_SECONDS = 100e-6
#: ...and no spin is tried for this many turns after it.
COOLDOWN = 64

#: The clock of the reactor thread's CPU time (a module attribute: tests replace it).
thread_time = time.thread_time

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
    cpu = thread_time
    hot = False  # the last turn handled events
    window = min(spin, START_SPIN)  # how long the next spin may last
    cooldown = 0  # turns left without spinning after a spin lost the CPU

    def do_poll(timeout: float | None) -> None:
        nonlocal hot, window, cooldown
        selectables = reactor._selectables
        poll = reactor._poller.poll
        most = len(selectables)
        block = -1 if timeout is None else timeout  # a sleep for the whole turn
        try:
            if not (hot and spin and timeout != 0 and (may_spin is None or may_spin())):
                events = poll(block, most)
            elif cooldown:
                cooldown -= 1
                events = poll(block, most)
            else:
                start = now()
                if not window:
                    events = poll(block, most)
                    slept = True
                elif not (events := poll(0, most)):
                    used = cpu()
                    end = start + (window if timeout is None else min(window, timeout))
                    while not events and now() < end:
                        events = poll(0, most)
                    if now() - start - (cpu() - used) > LOST_SECONDS:
                        # preempted: a client on this machine needs the CPU
                        window = 0.0
                        cooldown = COOLDOWN
                    if slept := not events:
                        if timeout is None:
                            events = poll(-1, most)
                        elif (left := timeout - (now() - start)) > 0:
                            events = poll(left, most)
                else:
                    slept = False
                if slept and not cooldown:
                    if now() - start > spin:  # no spin allowed would have caught it
                        window = window / 2 if window >= 2 * MIN_SPIN else 0.0
                    elif events:  # a longer one would have (a timer due says nothing of clients)
                        window = min(spin, max(2 * window, MIN_SPIN))
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
