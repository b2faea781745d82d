"""The spans of LangChain runs: open, current while they go, ended and handed back in any order.

:class:`RunSpans` keeps one span per open run (by run id), parents a run's span
to its parent run's, makes it the current OpenTelemetry span while the run goes
and gives the context back when it ends. Runs that end out of order in one
context (a batch starts several, then ends them) hand the context back only once
the last of them ends; a run ended in another context than it started in leaves
that context alone. Open runs are bounded (:data:`MAX_OPEN_RUNS`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Final
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from pyflare import semconv as sc
from pyflare._runtime import STATE, warn_once
from pyflare.instrumentation._base import record_failure, with_provider_calls
from pyflare.tracing.capture import render, render_preview

__all__ = [
    "CLOSED_EARLY",
    "MAX_OPEN_RUNS",
    "Run",
    "RunSpans",
    "context_attributes",
    "kind_attributes",
    "prompt_text",
]

#: Runs open at once per handler; past it the oldest is ended (a run LangChain never closed).
MAX_OPEN_RUNS: Final = 10_000
CLOSED_EARLY: Final = "pyflare.output.closed_early"
_SESSION_KEYS: Final = ("session_id", "thread_id", "conversation_id")


class Run:
    __slots__ = ("first_token", "model", "prompt", "provider_calls", "span", "token")

    def __init__(
        self,
        span: trace.Span,
        token: object,
        model: str | None,
        prompt: Any,
        provider_calls: list[str] | None = None,
    ) -> None:
        self.span = span
        self.token = token
        self.model = model
        self.prompt = prompt  # kept to estimate tokens when the model reports none
        self.first_token = False
        # Provider calls (OpenAI...) recorded as their own spans inside a model run.
        self.provider_calls = provider_calls


def kind_attributes(kind: str) -> dict[str, Any]:
    return {sc.SPAN_KIND: kind, sc.OI_SPAN_KIND: kind.upper()}


def context_attributes(tags: Any, metadata: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if isinstance(tags, list) and tags and all(isinstance(t, str) for t in tags):
        attributes["tag.tags"] = tuple(tags)
    if isinstance(metadata, Mapping) and metadata:
        for key, name in (
            ("langgraph_node", "langgraph.node"),
            ("langgraph_step", "langgraph.step"),
        ):
            value = metadata.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                attributes[name] = value
        session = next((s for k in _SESSION_KEYS if isinstance(s := metadata.get(k), str)), None)
        if session:
            attributes[sc.SESSION_ID] = session
    return attributes


def prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    parts: list[str] = []
    for entry in prompt if isinstance(prompt, list) else ():
        content = entry.get("content") if isinstance(entry, dict) else entry
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(b.get("text", "") for b in content if isinstance(b, dict))
            parts.extend(b for b in content if isinstance(b, str))
    return "\n".join(p for p in parts if isinstance(p, str))


class RunSpans:
    """The open runs' spans of one callback handler (thread-safe)."""

    def __init__(self, tracer: Callable[[], trace.Tracer]) -> None:
        self._tracer = tracer
        self._runs: dict[UUID, Run] = {}
        # Runs ended while another run's span was current in their context: detached
        # once the runs above them end (keyed by id() of the span they hold).
        self._late: dict[int, Run] = {}
        self._lock = threading.Lock()

    def get(self, run_id: UUID) -> Run | None:
        return self._runs.get(run_id)

    def start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        attributes: dict[str, Any],
        content: Any,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        model: str | None = None,
        prompt: Any = None,
        model_call: bool = False,
    ) -> None:
        parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        parent_context = trace.set_span_in_context(parent.span) if parent is not None else None
        span = self._tracer().start_span(
            name, context=parent_context, kind=kind, attributes=attributes, start_time=STATE.clock()
        )
        if content is not None and STATE.capture_inputs and span.is_recording():
            rendered = render(content, max_chars=STATE.max_chars + STATE.preview_margin)
            span.set_attributes(
                {sc.INPUT_PREVIEW: rendered.preview, sc.INPUT_HASH: rendered.digest}
            )
        ctx = trace.set_span_in_context(span)
        provider_calls = None
        if model_call:
            ctx, provider_calls = with_provider_calls(ctx)
        token = otel_context.attach(ctx)
        with self._lock:
            self._runs[run_id] = Run(span, token, model, prompt, provider_calls)
            if len(self._runs) > MAX_OPEN_RUNS:
                oldest = next(iter(self._runs))
                abandoned = self._runs.pop(oldest)
                abandoned.span.set_attribute(CLOSED_EARLY, True)
                abandoned.span.end(end_time=STATE.clock())
                warn_once(
                    "langchain-open-runs",
                    "PyFlare's LangChain handler had over %d runs open; the oldest were ended",
                    MAX_OPEN_RUNS,
                )

    def pop(self, run_id: UUID) -> Run | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def output(self, run: Run, value: Any) -> None:
        if value is not None and STATE.capture_outputs and run.span.is_recording():
            limit = STATE.max_chars + STATE.preview_margin
            run.span.set_attribute(sc.OUTPUT_PREVIEW, render_preview(value, max_chars=limit))

    def end(self, run: Run, error: BaseException | None = None) -> None:
        span = run.span
        if error is not None:
            if isinstance(error, GeneratorExit):  # a stream closed before its end
                span.set_attribute(CLOSED_EARLY, True)
            else:
                record_failure(span, error)
        elif span.is_recording():
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=STATE.clock())
        self._detach(run)

    def _detach(self, run: Run) -> None:
        if trace.get_current_span() is not run.span:
            with self._lock:
                self._late[id(run.span)] = run
                if len(self._late) > MAX_OPEN_RUNS:
                    del self._late[next(iter(self._late))]
            return
        otel_context.detach(run.token)  # type: ignore[arg-type]
        while True:
            current = trace.get_current_span()
            with self._lock:
                late = self._late.get(id(current))
                if late is None or late.span is not current:
                    return
                del self._late[id(current)]
            otel_context.detach(late.token)  # type: ignore[arg-type]

    def fail(self, run_id: UUID, error: BaseException) -> None:
        run = self.pop(run_id)
        if run is not None:
            self.end(run, error)
