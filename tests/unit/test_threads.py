"""BatchWorker: one thread of its own, batches handed back in one call, in order."""

import threading
import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from dittofs.threads import BatchWorker


class CountingReactor:
    """The real reactor, counting the hand-backs from the worker thread."""

    def __init__(self):
        self.calls = 0

    def callFromThread(self, fn, *args):
        self.calls += 1
        reactor.callFromThread(fn, *args)


def make(process, **kw):
    r = CountingReactor()
    return BatchWorker("test-batch", process, r, **kw), r


def gated():
    """(gate, process): a processor that holds each batch until the gate opens."""
    gate = threading.Event()

    def process(items):
        gate.wait(5)
        return [(True, i) for i in items]
    return gate, process


@pytest_twisted.ensureDeferred
async def test_results_in_order_with_one_hand_back_per_batch():
    started, gate = threading.Event(), threading.Event()
    threads, batches = set(), []

    def process(items):
        started.set()
        gate.wait(5)
        threads.add(threading.current_thread().name)
        batches.append(list(items))
        return [(True, i * 10) if i != 3 else (False, ValueError("item 3")) for i in items]

    w, r = make(process)
    ds = [w.submit(0)]
    assert started.wait(5)  # the thread holds item 0 while the rest queue up
    ds += [w.submit(i) for i in range(1, 6)]
    gate.set()
    got = await defer.DeferredList(ds, consumeErrors=True)
    w.stop()
    assert [ok for ok, _ in got] == [True, True, True, False, True, True]
    assert [v for ok, v in got if ok] == [0, 10, 20, 40, 50]
    assert got[3][1].check(ValueError)
    # The first item woke the thread; the rest queued behind it went in one batch.
    assert sum(batches, []) == list(range(6))
    assert len(batches) == 2 and r.calls == 2
    assert threads == {"test-batch"}


@pytest_twisted.ensureDeferred
async def test_a_raising_processor_fails_the_whole_batch_and_the_worker_goes_on():
    def process(items):
        if "bad" in items:
            raise RuntimeError("broken batch")
        return [(True, i) for i in items]

    w, _ = make(process)
    with pytest.raises(RuntimeError):
        await w.submit("bad")
    assert await w.submit("good") == "good"
    w.stop()


@pytest_twisted.ensureDeferred
async def test_inline_items_run_on_the_caller_only_when_idle():
    seen = []

    def process(items):
        seen.append((threading.current_thread() is threading.main_thread(), list(items)))
        return [(True, i) for i in items]

    w, r = make(process, inline=lambda item: item < 100)
    d = w.submit(1)
    assert d.called and d.result == 1 and r.calls == 0  # done at once, no thread
    assert await w.submit(500) == 500
    assert seen == [(True, [1]), (False, [500])]
    w.stop()


class HoldingReactor:
    """The real reactor, but the worker's hand-backs wait until released."""

    def __init__(self):
        self.held = []
        self.handed = threading.Event()

    def callFromThread(self, fn, *args):
        self.held.append((fn, args))
        self.handed.set()

    def release(self):
        for fn, args in self.held:
            reactor.callFromThread(fn, *args)
        self.held = []


@pytest_twisted.ensureDeferred
async def test_no_inline_item_overtakes_a_result_computed_but_not_yet_delivered():
    """The worker has processed an item and gone idle, its result on the way back: an
    inline item after it goes to the worker too, so its outcome never comes first."""
    where = []

    def process(items):
        where.append((threading.current_thread() is threading.main_thread(), list(items)))
        return [(True, i) for i in items]

    r = HoldingReactor()
    w = BatchWorker("test-batch", process, r, inline=lambda item: item < 100)
    try:
        first = w.submit(500)
        assert r.handed.wait(5)
        for _ in range(500):  # the worker goes back to waiting for work
            if not w._scheduled:
                break
            time.sleep(0.01)
        second = w.submit(1)
        assert not second.called  # not processed here, ahead of the first's result
        for _ in range(500):
            if len(r.held) == 2:
                break
            time.sleep(0.01)
        assert not first.called and not second.called
        order = []
        first.addCallback(lambda v: order.append(v) or v)
        second.addCallback(lambda v: order.append(v) or v)
        r.release()
        assert await second == 1 and await first == 500
        assert order == [500, 1]
        assert where == [(False, [500]), (False, [1])]
        third = w.submit(2)  # every result delivered: inline again
        assert third.called and third.result == 2 and where[-1] == (True, [2])
    finally:
        w.stop()
        r.release()


@pytest_twisted.ensureDeferred
async def test_stop_drains_the_queue_and_a_later_submit_starts_a_new_thread():
    gate, process = gated()
    w, _ = make(process)
    ds = [w.submit(i) for i in range(3)]
    threading.Timer(0.05, gate.set).start()
    w.stop()  # returns only once all three were processed
    assert not any(t.name == "test-batch" for t in threading.enumerate())
    assert await defer.gatherResults(ds) == [0, 1, 2]
    assert await w.submit(7) == 7
    w.stop()


@pytest_twisted.ensureDeferred
async def test_finish_answers_the_rest_first_and_lets_inline_items_through_meanwhile():
    in_finish, release = threading.Event(), threading.Event()
    seen, fail = [], []

    busy, go = threading.Event(), threading.Event()

    def process(items):
        seen.append((threading.current_thread() is threading.main_thread(), list(items)))
        if 500 in items:
            busy.set()
            go.wait(5)
        return [(True, i) for i in items]

    def finish():  # the fsync: slow, and after the batch's commit
        in_finish.set()
        release.wait(5)
        if fail:
            raise OSError(5, "Input/output error")

    w, r = make(process, inline=lambda item: item < 100, finish=finish,
                needs_finish=lambda item: item >= 1000)
    blocker = w.submit(500)  # keeps the worker busy so that the next two queue up
    busy.wait(5)
    durable, lazy = w.submit(1000), w.submit(2)
    go.set()
    assert await blocker == 500 and await lazy == 2  # lazy: answered before the fsync
    while not in_finish.is_set():
        await deferLater(0.001)
    assert not durable.called
    during = w.submit(3)  # the worker is in finish, nothing queued: done at once, here
    assert during.called and during.result == 3
    release.set()
    assert await durable == 1000
    assert seen == [(False, [500]), (False, [1000, 2]), (True, [3])]
    fail.append(1)
    release.clear()
    in_finish.clear()
    bad, ok = w.submit(1001), w.submit(501)
    release.set()
    with pytest.raises(OSError):
        await bad
    assert await ok == 501  # needs no finish: its result stands
    w.stop()


def deferLater(seconds):
    from twisted.internet import task
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_calls_out_in_worker_threads_are_counted_until_their_results_are_back():
    """The reactor's busy polling waits for no worker: it asks threads.idle()."""
    from dittofs import threads as T
    gate, process = gated()
    w, _ = make(process)
    pool = T.LazyPool("test-pool", 1)
    try:
        base = T.outstanding  # 0 unless an earlier test left a call out
        queued = [w.submit(1), w.submit(2)]
        pooled = pool.run(lambda: gate.wait(5) and "ran")
        failing = pool.run(lambda: 1 / 0)
        assert T.outstanding == base + 4 and not T.idle()
        gate.set()
        assert await defer.gatherResults(queued) == [1, 2]
        assert await pooled == "ran"
        with pytest.raises(ZeroDivisionError):
            await failing
        assert T.outstanding == base
        # Work done inline on the reactor's own thread is never out.
        inline = BatchWorker("test-inline", lambda items: [(True, i) for i in items], reactor,
                             inline=lambda item: True)
        assert await inline.submit(7) == 7 and T.outstanding == base
    finally:
        gate.set()
        w.stop()
        pool.stop()


@pytest_twisted.ensureDeferred
async def test_an_inline_item_that_needs_finish_is_finished_here_only_when_the_worker_is_idle():
    where = []  # (what, on the calling thread)
    fail = []

    def process(items):
        where.append(("process", threading.current_thread() is threading.main_thread()))
        if 500 in items:
            gate.wait(5)
        return [(True, i) for i in items]

    def finish():
        where.append(("finish", threading.current_thread() is threading.main_thread()))
        if hold:
            in_finish.set()
            release.wait(5)
        if fail:
            raise OSError(5, "Input/output error")

    gate, in_finish, release = threading.Event(), threading.Event(), threading.Event()
    hold, here = [], [True]
    w, r = make(process, inline=lambda item: here[0] and (item >= 1000 or item < 100),
                finish=finish, needs_finish=lambda item: item >= 1000)
    d = w.submit(1000)
    assert d.called and d.result == 1000 and r.calls == 0  # committed and synced here
    assert where == [("process", True), ("finish", True)]
    del where[:]
    busy = w.submit(500)  # the worker is busy: a durable item queues behind it
    queued = w.submit(1001)
    gate.set()
    assert await busy == 500 and await queued == 1001
    assert where == [("process", False), ("process", False), ("finish", False)] or \
        where == [("process", False), ("finish", False)]  # one batch or two
    assert ("finish", True) not in where
    hold.append(1)
    here[0] = False
    first = w.submit(1003)  # to the worker, which then waits in its finish
    assert in_finish.wait(5)
    here[0] = True
    lazy, durable = w.submit(5), w.submit(1004)
    assert lazy.called and lazy.result == 5  # no finish needed: done here meanwhile
    assert not durable.called  # never a second finish beside the worker's
    hold.clear()
    release.set()
    assert await first == 1003 and await durable == 1004
    assert ("finish", True) not in where
    fail.append(1)
    with pytest.raises(OSError):  # a failed finish fails the item, here too
        await w.submit(1002)
    w.stop()


@pytest_twisted.ensureDeferred
async def test_without_finish_no_item_waits_for_one():
    w, _ = make(lambda items: [(True, i) for i in items], inline=lambda item: item < 100,
                needs_finish=lambda item: True)
    d = w.submit(1)
    assert d.called and d.result == 1  # here, and no finish to call
    assert await w.submit(500) == 500
    w.stop()
