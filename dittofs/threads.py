"""Thread helpers: a single worker thread that takes queued items in batches.

Used where one thread must own a resource and group-commit: the LMDB writer (one write
transaction per batch) and the WAL appender (one writev/fsync per batch).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

#: ``process(items)`` runs in the worker thread and returns one (ok, value) per item;
#: value is the result, or a Failure when ok is False.
BatchProcessor = Callable[[list], list]

#: An fsync that took longer than this (a rotating disk, network storage) is not done on
#: the reactor's thread even when nothing else waits for it (see InlineSync): a call that
#: came meanwhile would wait that long.
INLINE_SYNC_SECONDS = 0.001

#: Calls handed to worker threads (pools and batch workers) whose results the reactor has
#: not had yet.  While there are any, a worker may need the GIL to finish: the reactor's
#: busy polling (dittofs.leanpoll) waits for none, as it holds the GIL between polls.
outstanding = 0


def _returned(result: Any) -> Any:
    global outstanding
    outstanding -= 1
    return result


def idle() -> bool:
    """No call is out in a worker thread."""
    return outstanding == 0


class InlineSync:
    """Whether a store's fsync may be done on the calling (reactor) thread instead of in its
    worker thread (the WAL's syncer, the LMDB writer).

    Handing an fsync to a worker and its result back costs two wake-ups: here ~30-40 us of
    the reactor's CPU and 60-90 us more wait for the caller, about as much as the fsync of
    a small record (~80 us).  When ``quiet()`` says nothing else waits for the reactor (one
    client, waiting for this reply) and the last fsync measured took less than
    INLINE_SYNC_SECONDS, the reactor does it itself; otherwise the worker does, and changes
    that come meanwhile share its next fsync.  Without ``quiet``, never."""

    def __init__(self, quiet: Callable[[], bool] | None) -> None:
        self.quiet = quiet
        self.seconds = 0.0  # how long the last fsync took, wherever it ran

    def allowed(self) -> bool:
        return self.quiet is not None and self.seconds < INLINE_SYNC_SECONDS and self.quiet()

    def timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn`` (the fsync, in either thread), recording how long it took."""
        started = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.seconds = time.monotonic() - started


class LazyPool:
    """A bounded thread pool of one kind of blocking work (disk, S3, SQL), started on first
    use so that a daemonising fork after construction keeps it."""

    def __init__(self, name: str, maximum: int, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.pool = ThreadPool(1, maximum, name=name)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Call ``fn`` in the pool; the Deferred fires with its result on the reactor."""
        global outstanding
        if not self.pool.started:
            self.pool.start()
        outstanding += 1
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args,
                                         **kwargs).addBoth(_returned)

    def stop(self) -> None:
        if self.pool.started:
            self.pool.stop()


class BatchWorker:
    """Queue items from the reactor thread; one thread of its own processes whatever has
    queued up and hands all the results back in one call.

    Its own thread, not a pool's: a hand-off through Twisted's thread pool (its team
    coordinator, then one ``callFromThread`` per result and one more for the pool's own
    completion) cost ~110 us a round trip here against ~50 us for a condition variable and
    one ``callFromThread`` per batch, and every durable metadata change and fsync of a
    small-file workload pays one or two of them.

    With ``finish`` (an fsync), a batch is processed in two steps: ``process``, after which
    the items that do not need ``finish`` are handed back at once, then ``finish`` for
    the others.  While ``finish`` runs and nothing is queued, inline items are processed
    on the calling thread as when idle: a cheap change need not wait for an fsync of
    changes before it (``process`` must allow that, as LMDB allows a write transaction
    during a sync).  An inline item that needs ``finish`` is processed and finished on
    the calling thread only when the worker is idle.

    Results come back in the order the items were submitted (save an inline item's while
    the worker is in ``finish``): an item is processed inline only once the results of
    those before it have been delivered, not merely computed.  A caller that learns a
    later item's outcome thus knows every earlier one's: a COMMIT whose WAL record is
    written knows whether the unstable writes queued before it were."""

    def __init__(self, name: str, process: BatchProcessor, reactor: Any = None,
                 inline: Callable[[Any], bool] | None = None,
                 finish: Callable[[], None] | None = None,
                 needs_finish: Callable[[Any], bool] | None = None) -> None:
        """``inline(item)``: True for items cheap enough (no fsync, no open) to process on
        the calling (reactor) thread when the worker is idle, saving two thread hand-offs.
        ``finish()``: run in the worker after ``process`` when an item of the batch
        ``needs_finish(item)`` (or after an inline one that does); if it raises, those
        items fail with its error."""
        self.inline = inline
        self.finish = finish
        # Without finish, nothing needs it (nor waits for it).
        self.needs_finish = needs_finish if finish is not None else None
        self._finishing = False  # the worker is in ``finish``, its batch processed
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.name = name
        self.process = process
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[tuple[Any, defer.Deferred]] = []
        self._scheduled = False  # items queued or being processed
        self._undelivered = 0  # items submitted to the thread, results not yet delivered
        self._stopping = False
        # Started on first use, so that a daemonising fork after construction keeps it.
        self._thread: threading.Thread | None = None

    def submit(self, item: Any) -> defer.Deferred:
        if (self.inline is not None and (not self._undelivered or (
                self._finishing and not self._queue)) and self.inline(item)):
            # Only the reactor thread submits, and the worker runs ``process`` only for
            # what was queued: with every result delivered, or the worker in ``finish``
            # and nothing queued, nothing else can be inside ``process`` now (nor, with
            # every result delivered, inside ``finish``).
            late = self.needs_finish is not None and self.needs_finish(item)
            if not late or not self._undelivered:
                try:
                    ok, value = self.process([item])[0]
                    if ok and late:
                        self.finish()
                except BaseException:
                    return defer.fail()
                return defer.succeed(value) if ok else defer.fail(value)
        global outstanding
        d: defer.Deferred = defer.Deferred()
        outstanding += 1
        self._undelivered += 1
        with self._cond:
            self._queue.append((item, d))
            if not self._scheduled:
                self._scheduled = True
                if self._thread is None:
                    self._stopping = False
                    self._thread = threading.Thread(target=self._run, name=self.name,
                                                    daemon=True)
                    self._thread.start()
                else:
                    self._cond.notify()
        return d

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue:
                    self._scheduled = False
                    if self._stopping:
                        return
                    cond.wait()
                batch, self._queue = self._queue, []
            try:
                results = self.process([item for item, _ in batch])
            except BaseException:
                failure = Failure()
                results = [(False, failure)] * len(batch)
            if self.needs_finish is None:
                self.reactor.callFromThread(self._deliver, batch, results)
                continue
            late = [i for i, (item, _) in enumerate(batch) if self.needs_finish(item)]
            if len(late) < len(batch):
                wait = set(late)
                early = [i for i in range(len(batch)) if i not in wait]
                self.reactor.callFromThread(self._deliver, [batch[i] for i in early],
                                            [results[i] for i in early])
            if not late:
                continue
            self._finishing = True
            try:
                self.finish()
            except BaseException:
                failure = Failure()
                results = [r if not r[0] else (False, failure) for r in results]
            finally:
                self._finishing = False
            self.reactor.callFromThread(self._deliver, [batch[i] for i in late],
                                        [results[i] for i in late])

    def stop(self) -> None:
        """Wait for the queue to drain and the thread to end."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify()
        if thread is not None:
            thread.join()

    def _deliver(self, batch: list, results: list) -> None:
        """Reactor thread: fire a batch's Deferreds in the order the items were queued."""
        global outstanding
        outstanding -= len(batch)
        self._undelivered -= len(batch)
        for (_, d), (ok, value) in zip(batch, results, strict=True):
            if ok:
                d.callback(value)
            else:
                d.errback(value)
