"""OpenTelemetry tracing: a span per RPC with child spans for metadata, cache and block
store work.  Off by default; when off, ``span()`` hands back one shared null context and
nothing from OpenTelemetry is imported.

Spans follow the request through ``await`` because Twisted runs each coroutine in its
own copy of the contextvars context, which is where OpenTelemetry keeps the current span.
"""

from __future__ import annotations

import contextlib
from typing import Any

_NULL = contextlib.nullcontext()
_tracer: Any = None


def enabled() -> bool:
    return _tracer is not None


def span(name: str, **attributes: Any) -> Any:
    """A context manager for a child span of the current one (a no-op when tracing is off)."""
    if _tracer is None:
        return _NULL
    return _tracer.start_as_current_span(name, attributes=attributes or None)


def server_span(name: str, **attributes: Any) -> Any:
    """The span of one request received by a protocol adapter."""
    if _tracer is None:
        return _NULL
    from opentelemetry.trace import SpanKind
    return _tracer.start_as_current_span(name, kind=SpanKind.SERVER,
                                         attributes=attributes or None)


def around(name: str, fn: Any, *args: Any, **attributes: Any) -> Any:
    """Call ``fn(*args)`` (which returns a Deferred) inside a child span that ends when the
    Deferred fires; just the call when tracing is off."""
    if _tracer is None:
        return fn(*args)
    sp = _tracer.start_span(name, attributes=attributes or None)
    try:
        d = fn(*args)
    except BaseException:
        sp.end()
        raise

    def done(result: Any) -> Any:
        sp.end()
        return result
    return d.addBoth(done)


def configure(endpoint: str = "", sample_rate: float = 1.0, service_name: str = "dittofs",
              exporter: Any = None) -> Any:
    """Turn tracing on.  Spans go to ``exporter`` if given (tests use the SDK's in-memory
    exporter), else over OTLP/HTTP to ``endpoint`` from a background thread, so a slow or
    unreachable collector never delays a request.  Returns the tracer provider."""
    global _tracer
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              sampler=ParentBased(TraceIdRatioBased(sample_rate)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=2)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = provider.get_tracer("dittofs")
    return provider


def disable() -> None:
    global _tracer
    _tracer = None
