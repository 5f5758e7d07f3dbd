"""What a finished span is shipped as (tracing/shipping.py): a list of JSON values, ids in hex. A request's spans (its
server span and its stages) are drawn straight into it, without the SDK's span objects (a tenth of their cost on the
event loop); the SDK's own spans (model loads) are read into it."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanContext, SpanKind, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

Fields = list[Any]
NAME, TRACE_ID, SPAN_ID, FLAGS, STATE, ENDED, ATTRIBUTES, CODE, DESCRIPTION, EVENTS = 0, 1, 2, 3, 4, 9, 10, 11, 12, 13


def drawn(name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind, start: int, attributes: dict[str, Any]) -> Fields:
    """A span's fields, its status unset; it ends when ENDED is set."""
    return [
        name,
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        int(context.trace_flags),
        context.trace_state.to_header() if context.trace_state else "",
        f"{parent.span_id:016x}" if parent is not None else "",
        parent.is_remote if parent is not None else False,
        kind.value,
        start,
        None,
        attributes,
        StatusCode.UNSET.value,
        None,
        [],
    ]


def fields_of(span: ReadableSpan) -> Fields:
    context = span.get_span_context()
    assert context is not None
    fields = drawn(span.name, context, span.parent, span.kind, span.start_time or 0, dict(span.attributes or {}))
    fields[ENDED], fields[CODE], fields[DESCRIPTION] = span.end_time, span.status.status_code.value, span.status.description
    fields[EVENTS] = [[event.name, dict(event.attributes or {}), event.timestamp] for event in span.events]
    return fields


def child_fields(name: str, parent: Fields, start: int, end: int | None, attributes: dict[str, Any]) -> Fields:
    """The fields of a span under the span whose fields are `parent` (a request's stage, under its server span), in
    the same trace; `end` may be set later (the encode span, open until the answer is sent)."""
    return [
        name,
        parent[TRACE_ID],
        f"{random.getrandbits(64) or 1:016x}",
        parent[FLAGS],
        parent[STATE],
        parent[SPAN_ID],
        False,
        SpanKind.INTERNAL.value,
        start,
        end,
        attributes,
        StatusCode.UNSET.value,
        None,
        [],
    ]
