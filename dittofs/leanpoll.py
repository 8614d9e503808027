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
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.logger import Logger

log = Logger(namespace="dittofs.reactor")

_NEEDS = ("_poller", "_selectables", "_doReadOrWrite", "doPoll")


def install(reactor: Any) -> bool:
    """Make ``reactor``'s loop turn the lean one; False (nothing changed) if it is not
    Twisted's epoll reactor as this module knows it."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # no epoll on this platform
        return False
    if type(reactor) is not EPollReactor or not all(hasattr(reactor, a) for a in _NEEDS):
        return False

    def do_poll(timeout: float | None) -> None:
        selectables = reactor._selectables
        try:
            events = reactor._poller.poll(-1 if timeout is None else timeout,
                                          len(selectables))
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        handle = reactor._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            try:
                handle(selectable, fd, event)
            except Exception:
                log.failure("reactor: unhandled error from {selectable!r}",
                            selectable=selectable)

    reactor.doIteration = reactor.doPoll = do_poll
    return True
