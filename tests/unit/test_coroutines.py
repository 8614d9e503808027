"""coroutines.start: a handler that does not wait gets no Deferred; one that does behaves
as under Deferred.fromCoroutine (results, failures, its own contextvars context)."""

from __future__ import annotations

import contextvars

import pytest
from twisted.internet import defer

from dittofs import coroutines

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")


async def immediate(x):
    await defer.succeed(None)  # an already-fired Deferred does not suspend it
    return x * 2


def test_a_coroutine_that_does_not_wait_returns_its_value():
    assert coroutines.start(immediate(21)) == (True, 42)


def test_an_exception_before_any_wait_is_raised_to_the_caller():
    async def bad():
        raise KeyError("x")
    with pytest.raises(KeyError):
        coroutines.start(bad())


def test_waits_then_returns_through_a_deferred_and_keeps_its_context():
    first, second = defer.Deferred(), defer.Deferred()
    seen = []

    async def handler():
        var.set("inner")
        a = await first
        seen.append(var.get())
        try:
            await second
        except ValueError as e:
            return a + str(e)
        return "not reached"

    done, d = coroutines.start(handler())
    assert not done and isinstance(d, defer.Deferred) and not d.called
    assert var.get() == "outer"  # the handler's set() stayed in its own context
    first.callback("got ")
    assert seen == ["inner"] and not d.called
    second.errback(ValueError("and caught"))
    assert d.called and d.result == "got and caught"
    assert second.result is None  # the failure was consumed, not left unhandled


def test_an_exception_after_a_wait_fails_the_deferred():
    gate = defer.Deferred()

    async def handler():
        await gate
        raise RuntimeError("late")

    done, d = coroutines.start(handler())
    assert not done
    failures = []
    d.addErrback(failures.append)
    gate.callback(None)
    assert len(failures) == 1 and failures[0].check(RuntimeError)
