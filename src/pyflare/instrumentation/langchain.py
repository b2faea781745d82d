"""LangChain (and LangGraph): one span per chain, model call, tool, retriever and agent run.

Two ways in:

* ``pyflare.instrument("langchain")`` (:class:`LangChainInstrumentor`) adds one
  :class:`PyFlareCallbackHandler` to every LangChain callback manager created from
  then on, by wrapping ``BaseCallbackManager.__init__``; ``uninstrument()`` puts the
  original back. A manager that already carries a PyFlare handler gets no second one.
* ``PyFlareCallbackHandler()`` passed explicitly (``config={"callbacks": [handler]}``).

Spans nest as the runs do (``parent_run_id``); a root run is a child of the span
current when it starts, so LangChain inside ``@pyflare.trace`` lands in the same
trace. While a run is going, its span is the current OpenTelemetry span, so what
the run calls (an instrumented OpenAI client, a ``@pyflare.trace`` function in a
tool) nests under it. Runs that end out of order in one context (a batch starts
several runs, then ends them) hand the context back only when the last one ends;
a run ended in another context than it started in (a stream abandoned and
collected elsewhere) leaves that context alone.

Model calls follow the OTel GenAI conventions (span ``{operation} {model}``,
``gen_ai.request.*``, ``gen_ai.response.*``, ``gen_ai.usage.*`` from
``usage_metadata`` or ``llm_output``; tokens estimated and flagged
``pyflare.tokens.estimated`` when the model reported none). Retrieved documents go
into OpenInference's ``retrieval.documents.N.document.{id,score,content,metadata}``,
which PyFlare's RAG evaluators read. Content (inputs, outputs, documents) follows
``capture_inputs``/``capture_outputs`` and is masked on export like all content.
A hard budget (``pyflare.budget(..., hard=True)``) that is spent stops a model call
before it is sent: ``BudgetExceeded`` propagates from ``invoke``. Cost is priced by
the exporter or the server from the model and tokens, not on the span.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from pyflare import semconv as sc
from pyflare._runtime import STATE, warn_once
from pyflare.errors import BudgetExceeded
from pyflare.instrumentation import _langchain_attributes as la
from pyflare.instrumentation._base import (
    PyFlareInstrumentor,
    enforce_budget,
    estimate_tokens,
    tracer_for,
)
from pyflare.instrumentation._langchain_runs import (
    RunSpans,
    context_attributes,
    kind_attributes,
    prompt_text,
)
from pyflare.tracing.capture import render_preview

if TYPE_CHECKING:
    pass

__all__ = ["LangChainInstrumentor", "PyFlareCallbackHandler"]

logger = logging.getLogger("pyflare.instrumentation")

_FIRST_TOKEN: Final = "gen_ai.first_token"


class PyFlareCallbackHandler(BaseCallbackHandler):
    """A LangChain callback handler that turns runs into PyFlare spans.

    Pass it in a run's config, or let ``pyflare.instrument("langchain")`` add one
    everywhere. It never fails the run it observes: its own errors are logged
    once and swallowed; only ``BudgetExceeded`` from a spent hard budget
    propagates (that is what a hard budget is for).

    Args:
        tracer_provider: where the spans go; by default PyFlare's (what
            ``pyflare.init()`` set up).
    """

    run_inline = True  # called in the run's own context, in order: nesting stays right
    raise_error = True  # lets BudgetExceeded through; nothing else leaves the handler

    def __init__(self, *, tracer_provider: trace.TracerProvider | None = None) -> None:
        super().__init__()
        self._spans = RunSpans(tracer_for(tracer_provider))

    def _guard(self, event: str, exc: Exception) -> None:
        warn_once(f"langchain-{event}", "PyFlare's LangChain handler failed in %s: %r", event, exc)

    # -- chains -------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            attributes = kind_attributes("chain")
            attributes.update(context_attributes(tags, metadata))
            name = la.run_name(serialized, kwargs, "chain")
            self._spans.start(run_id, parent_run_id, name, attributes, la.content(inputs))
        except Exception as exc:
            self._guard("on_chain_start", exc)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.pop(run_id)
            if run is not None:
                self._spans.output(run, la.content(outputs))
                self._spans.end(run)
        except Exception as exc:
            self._guard("on_chain_end", exc)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._spans.fail(run_id, error)
        except Exception as exc:
            self._guard("on_chain_error", exc)

    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.get(run_id)
            if run is None or not run.span.is_recording():
                return
            run.span.set_attributes(kind_attributes("agent"))
            event: dict[str, Any] = {}
            tool = getattr(action, "tool", None)
            if isinstance(tool, str):
                event["gen_ai.tool.name"] = tool
            if STATE.capture_inputs:
                tool_input = getattr(action, "tool_input", None)
                event["gen_ai.tool.call.arguments"] = render_preview(
                    tool_input, max_chars=STATE.max_chars + STATE.preview_margin
                )
            run.span.add_event("agent.action", event, timestamp=STATE.clock())
        except Exception as exc:
            self._guard("on_agent_action", exc)

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.get(run_id)
            if run is None or not run.span.is_recording():
                return
            run.span.set_attributes(kind_attributes("agent"))
            run.span.add_event("agent.finish", timestamp=STATE.clock())
        except Exception as exc:
            self._guard("on_agent_finish", exc)

    # -- model calls --------------------------------------------------------------

    def _start_llm(
        self,
        operation: str,
        serialized: dict[str, Any] | None,
        prompt: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        model, attributes = la.llm_request_attributes(
            metadata, kwargs.get("invocation_params"), operation
        )
        enforce_budget(model)  # BudgetExceeded stops the call before it is sent
        attributes.update(kind_attributes("llm"))
        attributes[sc.INFERENCE_TYPE] = "llm"
        attributes.update(context_attributes(tags, metadata))
        name = f"{operation} {model}" if model else la.run_name(serialized, kwargs, operation)
        self._spans.start(
            run_id,
            parent_run_id,
            name,
            attributes,
            prompt,
            kind=SpanKind.CLIENT,
            model=model,
            prompt=prompt,
            model_call=True,
        )

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            prompt = la.messages_content(messages[0]) if messages else []
            self._start_llm(
                "chat", serialized, prompt, run_id, parent_run_id, tags, metadata, kwargs
            )
        except BudgetExceeded:
            raise
        except Exception as exc:
            self._guard("on_chat_model_start", exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            prompt: Any = prompts[0] if len(prompts) == 1 else list(prompts)
            self._start_llm(
                "text_completion", serialized, prompt, run_id, parent_run_id, tags, metadata, kwargs
            )
        except BudgetExceeded:
            raise
        except Exception as exc:
            self._guard("on_llm_start", exc)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.get(run_id)
            if run is not None and not run.first_token:
                run.first_token = True
                run.span.add_event(_FIRST_TOKEN, timestamp=STATE.clock())
        except Exception as exc:
            self._guard("on_llm_new_token", exc)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.pop(run_id)
            if run is None:
                return
            attributes, has_usage = la.llm_result_attributes(response)
            generations = getattr(response, "generations", None) or [[]]
            text = la.output_text(generations[0])
            if run.provider_calls:
                # The provider's own span inside this one has the tokens and the cost.
                for key in la.USAGE_KEYS:
                    attributes.pop(key, None)
                attributes[sc.USAGE_IN_CHILD] = "true"
            elif not has_usage:
                attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = estimate_tokens(
                    prompt_text(run.prompt), run.model
                )
                attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = estimate_tokens(text, run.model)
                attributes[sc.TOKENS_ESTIMATED] = "true"
            run.span.set_attributes(attributes)
            self._spans.output(run, text)
            self._spans.end(run)
        except Exception as exc:
            self._guard("on_llm_end", exc)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._spans.fail(run_id, error)
        except Exception as exc:
            self._guard("on_llm_error", exc)

    # -- tools and retrievers -----------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = la.run_name(serialized, kwargs, "tool")
            attributes = kind_attributes("tool")
            attributes["gen_ai.operation.name"] = "execute_tool"
            attributes["gen_ai.tool.name"] = name
            description = serialized.get("description") if serialized else None
            if isinstance(description, str) and description:
                attributes["gen_ai.tool.description"] = description[:1000]
            call_id = kwargs.get("tool_call_id")
            if isinstance(call_id, str) and call_id:
                attributes["gen_ai.tool.call.id"] = call_id
            attributes.update(context_attributes(tags, metadata))
            content = inputs if inputs is not None else input_str
            self._spans.start(run_id, parent_run_id, f"execute_tool {name}", attributes, content)
        except Exception as exc:
            self._guard("on_tool_start", exc)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.pop(run_id)
            if run is not None:
                content = getattr(output, "content", output)  # a ToolMessage: its content
                self._spans.output(run, content)
                self._spans.end(run)
        except Exception as exc:
            self._guard("on_tool_end", exc)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._spans.fail(run_id, error)
        except Exception as exc:
            self._guard("on_tool_error", exc)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            attributes = kind_attributes("retriever")
            attributes.update(context_attributes(tags, metadata))
            name = la.run_name(serialized, kwargs, "retriever")
            self._spans.start(run_id, parent_run_id, name, attributes, query)
        except Exception as exc:
            self._guard("on_retriever_start", exc)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._spans.pop(run_id)
            if run is None:
                return
            if run.span.is_recording():
                run.span.set_attributes(
                    la.document_attributes(list(documents), STATE.capture_outputs)
                )
            self._spans.end(run)
        except Exception as exc:
            self._guard("on_retriever_end", exc)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._spans.fail(run_id, error)
        except Exception as exc:
            self._guard("on_retriever_error", exc)


class _AddHandler:
    """Wraps ``BaseCallbackManager.__init__``: every new manager gets the handler."""

    def __init__(self, handler: PyFlareCallbackHandler) -> None:
        self.handler = handler

    def __call__(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> None:
        wrapped(*args, **kwargs)
        try:
            present = (*instance.handlers, *instance.inheritable_handlers)
            if not any(isinstance(h, PyFlareCallbackHandler) for h in present):
                instance.add_handler(self.handler, True)
        except Exception as exc:
            warn_once("langchain-add-handler", "PyFlare could not join a LangChain run: %r", exc)


class LangChainInstrumentor(PyFlareInstrumentor):
    """Traces every LangChain run in the process (``pyflare.instrument("langchain")``).

    ``instrument(tracer_provider=None)``; ``uninstrument()`` restores
    ``BaseCallbackManager.__init__`` exactly. Supports ``langchain-core`` 0.3 to 1.x.
    """

    distribution: ClassVar[str] = "langchain-core"
    supported: ClassVar[str] = ">=0.3,<2"

    def _instrument(self, **kwargs: Any) -> None:
        import wrapt

        self.check_options(kwargs)
        self.handler = PyFlareCallbackHandler(tracer_provider=kwargs.get("tracer_provider"))
        wrapt.wrap_function_wrapper(
            "langchain_core.callbacks.base",
            "BaseCallbackManager.__init__",
            _AddHandler(self.handler),
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        from langchain_core.callbacks.base import BaseCallbackManager
        from opentelemetry.instrumentation.utils import unwrap

        unwrap(BaseCallbackManager, "__init__")
