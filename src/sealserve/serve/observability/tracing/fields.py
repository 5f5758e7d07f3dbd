"""What a finished span is shipped as (tracing/shipping.py): a list of JSON values, ids in hex. The request's stage spans
are drawn straight into it, without the SDK's span objects (a tenth of their cost on the event loop)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanContext, SpanKind, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

Fields = list[Any]
ENDED = 9  # the end time's place, set last for a span still open when drawn


def fields_of(span: ReadableSpan) -> Fields:
    context, parent = span.get_span_context(), span.parent
    assert context is not None
    state = context.trace_state.to_header() if context.trace_state else ""
    events = [[event.name, dict(event.attributes or {}), event.timestamp] for event in span.events]
    status = span.status
    return [
        span.name,
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        int(context.trace_flags),
        state,
        f"{parent.span_id:016x}" if parent is not None else "",
        parent.is_remote if parent is not None else False,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or {}),
        status.status_code.value,
        status.description,
        events,
    ]


def stage_fields(name: str, parent: SpanContext, start: int, end: int | None, attributes: dict[str, Any]) -> Fields:
    """The fields of a request stage's span, a child of the request's server span `parent`, drawn without the SDK (a
    tenth of what the SDK's span costs); `end` may be set later (the encode span, open until the answer is sent)."""
    state = parent.trace_state.to_header() if parent.trace_state else ""
    span_id = random.getrandbits(64) or 1
    return [
        name,
        f"{parent.trace_id:032x}",
        f"{span_id:016x}",
        int(parent.trace_flags),
        state,
        f"{parent.span_id:016x}",
        False,
        SpanKind.INTERNAL.value,
        start,
        end,
        attributes,
        StatusCode.UNSET.value,
        None,
        [],
    ]
