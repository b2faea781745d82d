"""Streamed OpenAI calls: the span stays open while the caller reads the stream.

`SyncStream` and `AsyncStream` wrap the client's ``Stream``/``AsyncStream`` (they are
transparent proxies: ``isinstance`` and every attribute still work) and end the span
exactly once, when the stream is read to its end, fails, is closed (``close()``,
``with`` block, ``async with``) or is garbage-collected unread. A stream closed
before its end is marked ``pyflare.output.closed_early``.

The span records the time to the first token (``pyflare.llm.time_to_first_token_ns``
and a ``gen_ai.first_token`` event), and, once the stream ends, what a plain call
records, from the chunks: usage from the final chunk, or tokens estimated from the
request and the streamed text (flagged ``pyflare.tokens.estimated``) when the stream
carried none.
"""

from __future__ import annotations

from typing import Any, Final

import wrapt
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from pyflare._runtime import STATE, warn_once
from pyflare.instrumentation._base import ERROR_TYPE, record_failure
from pyflare.instrumentation._openai_request import CallInfo
from pyflare.instrumentation._openai_response import (
    Usage,
    chat_usage,
    completion_attributes,
    responses_response,
)

__all__ = ["AsyncStream", "ChatChunks", "ResponseEvents", "StreamState", "SyncStream"]

TIME_TO_FIRST_TOKEN: Final = "pyflare.llm.time_to_first_token_ns"
CLOSED_EARLY: Final = "pyflare.output.closed_early"
_FIRST_TOKEN_EVENT: Final = "gen_ai.first_token"


class ChatChunks:
    """Accumulates ``chat.completion.chunk`` objects into a completion's fields."""

    __slots__ = ("calls", "finish", "id", "model", "texts", "tier", "usage")

    def __init__(self) -> None:
        # The text is kept even when outputs aren't captured: without usage in the
        # stream, the output tokens are estimated from it.
        self.id: Any = None
        self.model: Any = None
        self.tier: Any = None
        self.texts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: dict[int, str] = {}
        self.usage: Usage | None = None

    def add(self, chunk: Any) -> bool:
        """Take one chunk; True when it carries generated content (a token)."""
        if self.id is None:
            self.id = getattr(chunk, "id", None)
            self.model = getattr(chunk, "model", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = chat_usage(usage)
            self.tier = getattr(chunk, "service_tier", None)
        token = False
        for choice in getattr(chunk, "choices", None) or ():
            index = getattr(choice, "index", 0)
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if content:
                token = True
                if index == 0:
                    self.texts.append(content)
            tool_calls = getattr(delta, "tool_calls", None)
            if tool_calls:
                token = True
                if index == 0:
                    self._tool_calls(tool_calls)
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self.finish[index] = reason
        return token

    def _tool_calls(self, deltas: Any) -> None:
        for delta in deltas:
            entry = self.calls.setdefault(
                getattr(delta, "index", 0), {"id": None, "name": None, "arguments": ""}
            )
            if getattr(delta, "id", None):
                entry["id"] = delta.id
            function = getattr(delta, "function", None)
            name = getattr(function, "name", None)
            if name:
                entry["name"] = name
            arguments = getattr(function, "arguments", None)
            if arguments:
                entry["arguments"] += arguments

    def attributes(self, info: CallInfo) -> dict[str, Any]:
        return completion_attributes(
            info,
            response_id=self.id,
            model=self.model,
            finish_reasons=[self.finish[i] for i in sorted(self.finish)],
            text="".join(self.texts) if self.texts else None,
            tool_calls=[self.calls[i] for i in sorted(self.calls)],
            usage=self.usage,
            service_tier=self.tier,
        )

    def failure(self) -> tuple[str, str] | None:
        return None


class ResponseEvents:
    """Accumulates Responses API stream events; the final response carries it all."""

    __slots__ = ("error", "response", "texts")

    _FINAL: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def __init__(self) -> None:
        self.response: Any = None
        self.texts: list[str] = []
        self.error: tuple[str, str] | None = None

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if not isinstance(kind, str):
            return False
        if kind.endswith(".delta"):
            if kind == "response.output_text.delta":
                delta = getattr(event, "delta", None)
                if isinstance(delta, str):
                    self.texts.append(delta)
            return True
        if kind == "response.created" or kind in self._FINAL:
            self.response = getattr(event, "response", None)
            if kind == "response.failed":
                error = getattr(self.response, "error", None)
                self.error = (
                    str(getattr(error, "code", None) or "response.failed"),
                    str(getattr(error, "message", "") or ""),
                )
        elif kind == "error":
            self.error = (
                str(getattr(event, "code", None) or "error"),
                str(getattr(event, "message", "") or ""),
            )
        return False

    def attributes(self, info: CallInfo) -> dict[str, Any]:
        response = self.response
        if response is not None and getattr(response, "usage", None) is not None:
            return responses_response(response, info)
        return completion_attributes(
            info,
            response_id=getattr(response, "id", None),
            model=getattr(response, "model", None),
            finish_reasons=[],
            text="".join(self.texts) if self.texts else None,
            tool_calls=[],
            usage=None,
        )

    def failure(self) -> tuple[str, str] | None:
        return self.error


class StreamState:
    """One streamed call's span, ended exactly once (see the module docstring)."""

    __slots__ = ("chunks", "ended", "first_ns", "info", "span")

    def __init__(self, span: trace.Span, info: CallInfo, chunks: ChatChunks | ResponseEvents):
        self.span = span
        self.info = info
        self.chunks = chunks
        self.first_ns = 0
        self.ended = False

    def add(self, item: Any) -> None:
        if self.ended:
            return
        try:
            if self.chunks.add(item) and not self.first_ns:
                self.first_ns = STATE.clock()
                self.span.add_event(_FIRST_TOKEN_EVENT, timestamp=self.first_ns)
        except Exception as exc:
            warn_once("instr-stream-chunk", "PyFlare could not read a stream chunk: %r", exc)

    def finish(self, exc: BaseException | None = None, *, early: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        span = self.span
        try:
            attributes = self.chunks.attributes(self.info)
            if self.first_ns:
                attributes[TIME_TO_FIRST_TOKEN] = self.first_ns - self.info.start_ns
            if early:
                attributes[CLOSED_EARLY] = True
            span.set_attributes(attributes)
            failure = self.chunks.failure()
            if failure is not None and exc is None:
                span.set_attribute(ERROR_TYPE, failure[0])
                span.set_status(Status(StatusCode.ERROR, f"{failure[0]}: {failure[1]}"[:1000]))
        except Exception as inner:
            warn_once("instr-stream-end", "PyFlare could not record a stream's end: %r", inner)
        if exc is not None:
            record_failure(span, exc)
        span.end(end_time=STATE.clock())


class _StreamProxy(wrapt.ObjectProxy[Any]):
    def __init__(self, stream: Any, state: StreamState) -> None:
        super().__init__(stream)
        self._self_state = state

    def __del__(self) -> None:
        self._self_state.finish(early=True)


class SyncStream(_StreamProxy):
    """The client's ``Stream``, ending the call's span when the stream ends."""

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            self._self_state.finish()
            raise
        except BaseException as exc:
            self._self_state.finish(exc)
            raise
        self._self_state.add(item)
        return item

    def __enter__(self) -> SyncStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_state.finish(early=True)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.finish(early=True)


class AsyncStream(_StreamProxy):
    """The client's ``AsyncStream``, ending the call's span when the stream ends."""

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_state.finish()
            raise
        except BaseException as exc:
            self._self_state.finish(exc)
            raise
        self._self_state.add(item)
        return item

    async def __aenter__(self) -> AsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_state.finish(early=True)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_state.finish(early=True)
