"""Run a handler coroutine at once, and make a Deferred only if it has to wait.

``Deferred.fromCoroutine`` builds a cancellable Deferred, a cancellation status and a
copied context, and runs the result through a callback chain, for every request, even
though most metadata requests (GETATTR, LOOKUP, ACCESS, READ from cache) never wait for
anything.  ``start`` runs the coroutine's first step in a copied context as Twisted does;
when it returns, there is no Deferred at all.  When it waits on a Deferred, the rest runs
from that Deferred's callback, in the same context, like ``inlineCallbacks``.
"""

from __future__ import annotations

from contextvars import copy_context
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


class Pending:
    """A coroutine waiting on a Deferred; ``deferred`` fires with its result."""

    __slots__ = ("coro", "context", "deferred")

    def __init__(self, coro: Any, context: Any, waiting: Deferred) -> None:
        self.coro = coro
        self.context = context
        self.deferred: Deferred = Deferred()
        waiting.addBoth(self._resume)

    def _resume(self, result: Any) -> None:
        # Called while the awaited Deferred runs its callbacks (Deferred.__await__ reads
        # the result from it); a failure is raised where the coroutine awaits, and
        # returning None from here leaves it handled.
        try:
            if isinstance(result, Failure):
                waiting = self.context.run(result.throwExceptionIntoGenerator, self.coro)
            else:
                waiting = self.context.run(self.coro.send, result)
        except StopIteration as e:
            self.deferred.callback(e.value)
            return
        except BaseException:
            self.deferred.errback()
            return
        waiting.addBoth(self._resume)


def start(coro: Any) -> tuple[bool, Any]:
    """Run ``coro`` until it returns or waits: ``(True, result)``, or ``(False, Deferred)``.
    An exception it raises at once propagates to the caller."""
    context = copy_context()
    try:
        waiting = context.run(coro.send, None)
    except StopIteration as e:
        return True, e.value
    return False, Pending(coro, context, waiting).deferred
