"""The response side of an OpenAI call: ids, finish reasons, output, usage and cost.

Plain responses and finished streams end up in the same functions
(`completion_attributes`, `usage_attributes`), so a streamed call is recorded
exactly like the same call made without streaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pyflare import semconv as sc
from pyflare._runtime import STATE
from pyflare.instrumentation._base import (
    estimate_message_tokens,
    estimate_tokens,
    json_text,
    preview,
    price_call,
)
from pyflare.instrumentation._openai_request import CallInfo

__all__ = [
    "TOOL_CALLS",
    "Usage",
    "chat_response",
    "chat_usage",
    "completion_attributes",
    "embeddings_response",
    "responses_response",
    "responses_usage",
    "usage_attributes",
]

#: The names of the tools a model asked to call (not content: no arguments).
TOOL_CALLS: Final = "pyflare.llm.tool_calls"
_RESPONSE_ID: Final = "gen_ai.response.id"
_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"

# (input, output, cached input, reasoning) tokens as the provider reported them.
Usage = tuple[int | None, int | None, int, int]


def _int(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def usage_attributes(
    info: CallInfo, model: str | None, usage: Usage, *, estimated: bool = False
) -> dict[str, Any]:
    """Token counts (GenAI and PyFlare names) and, when the model has a price, the cost."""
    input_tokens, output_tokens, cached, reasoning = usage
    attributes: dict[str, Any] = {}
    if input_tokens is not None:
        attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if output_tokens is not None:
        attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if cached:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
        attributes[sc.CACHED_INPUT_TOKENS] = cached
    if reasoning:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
        attributes[sc.REASONING_TOKENS] = reasoning
    if estimated:
        attributes[sc.TOKENS_ESTIMATED] = True
    if model is not None and input_tokens is not None:
        attributes.update(
            price_call(
                model,
                info.provider,
                input_tokens,
                output_tokens or 0,
                cached,
                reasoning,
                info.start_ns,
            )
        )
    return attributes


def completion_attributes(
    info: CallInfo,
    *,
    response_id: Any,
    model: Any,
    finish_reasons: Sequence[Any],
    text: str | None,
    tool_calls: list[dict[str, Any]],
    usage: Usage | None,
    service_tier: Any = None,
) -> dict[str, Any]:
    """Everything a finished chat or responses call records, plain or streamed.

    Without ``usage`` (a stream the caller did not ask usage for), tokens are
    estimated from the request and the output, and flagged as estimated.
    """
    attributes: dict[str, Any] = {}
    if isinstance(response_id, str):
        attributes[_RESPONSE_ID] = response_id
    answered_by = model if isinstance(model, str) and model else info.model
    if isinstance(model, str) and model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = model
    reasons = tuple(r for r in finish_reasons if isinstance(r, str))
    if reasons:
        attributes[_FINISH_REASONS] = reasons
    if isinstance(service_tier, str):
        attributes["openai.response.service_tier"] = service_tier
    if tool_calls:
        attributes[TOOL_CALLS] = tuple(str(call.get("name")) for call in tool_calls)
    if STATE.capture_outputs:
        output: str | None = text
        if tool_calls:
            output = json_text({"content": text, "tool_calls": tool_calls} if text else tool_calls)
        else:
            output = text
        if output:
            attributes[sc.OUTPUT_PREVIEW] = preview(output)
    estimated = usage is None
    if usage is None:
        output_text = (text or "") + (json_text(tool_calls) if tool_calls else "")
        usage = (
            estimate_message_tokens(info.estimate_input, answered_by)
            if info.estimate_input is not None
            else None,
            estimate_tokens(output_text, answered_by),
            0,
            0,
        )
    attributes.update(usage_attributes(info, answered_by, usage, estimated=estimated))
    return attributes


def chat_usage(usage: Any) -> Usage | None:
    """The usage block of a chat completion (or its final stream chunk)."""
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens_details", None)
    completion = getattr(usage, "completion_tokens_details", None)
    return (
        _int(getattr(usage, "prompt_tokens", None)),
        _int(getattr(usage, "completion_tokens", None)),
        _int(getattr(prompt, "cached_tokens", None)) or 0,
        _int(getattr(completion, "reasoning_tokens", None)) or 0,
    )


def chat_tool_calls(message_tool_calls: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for call in message_tool_calls or ():
        function = getattr(call, "function", None) or getattr(call, "custom", None)
        arguments = getattr(function, "arguments", None)
        if arguments is None:
            arguments = getattr(function, "input", None)
        calls.append(
            {
                "id": getattr(call, "id", None),
                "name": getattr(function, "name", None),
                "arguments": arguments,
            }
        )
    return calls


def chat_response(result: Any, info: CallInfo) -> dict[str, Any]:
    choices = getattr(result, "choices", None) or ()
    text: str | None = None
    calls: list[dict[str, Any]] = []
    if choices:
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        text = content if isinstance(content, str) else None
        calls = chat_tool_calls(getattr(message, "tool_calls", None))
    attributes = completion_attributes(
        info,
        response_id=getattr(result, "id", None),
        model=getattr(result, "model", None),
        finish_reasons=[getattr(choice, "finish_reason", None) for choice in choices],
        text=text,
        tool_calls=calls,
        usage=chat_usage(getattr(result, "usage", None)) or (None, None, 0, 0),
        service_tier=getattr(result, "service_tier", None),
    )
    fingerprint = getattr(result, "system_fingerprint", None)
    if isinstance(fingerprint, str):
        attributes["openai.response.system_fingerprint"] = fingerprint
    return attributes


def responses_usage(usage: Any) -> Usage | None:
    """The usage block of a Responses API response."""
    if usage is None:
        return None
    given = getattr(usage, "input_tokens_details", None)
    produced = getattr(usage, "output_tokens_details", None)
    return (
        _int(getattr(usage, "input_tokens", None)),
        _int(getattr(usage, "output_tokens", None)),
        _int(getattr(given, "cached_tokens", None)) or 0,
        _int(getattr(produced, "reasoning_tokens", None)) or 0,
    )


def responses_response(result: Any, info: CallInfo) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    texts: list[str] = []
    for item in getattr(result, "output", None) or ():
        kind = getattr(item, "type", None)
        if kind == "message":
            for part in getattr(item, "content", None) or ():
                if getattr(part, "type", None) == "output_text":
                    texts.append(str(getattr(part, "text", "")))
        elif kind == "function_call":
            calls.append(
                {
                    "id": getattr(item, "call_id", None),
                    "name": getattr(item, "name", None),
                    "arguments": getattr(item, "arguments", None),
                }
            )
    incomplete = getattr(getattr(result, "incomplete_details", None), "reason", None)
    status = getattr(result, "status", None)
    return completion_attributes(
        info,
        response_id=getattr(result, "id", None),
        model=getattr(result, "model", None),
        finish_reasons=[incomplete if isinstance(incomplete, str) else status],
        text="".join(texts) if texts else None,
        tool_calls=calls,
        usage=responses_usage(getattr(result, "usage", None)) or (None, None, 0, 0),
        service_tier=getattr(result, "service_tier", None),
    )


def embeddings_response(result: Any, info: CallInfo) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    model = getattr(result, "model", None)
    if isinstance(model, str) and model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = model
    data = getattr(result, "data", None) or ()
    if data:
        vector = getattr(data[0], "embedding", None)
        if isinstance(vector, list):
            attributes["gen_ai.embeddings.dimension.count"] = len(vector)
    usage = getattr(result, "usage", None)
    tokens = _int(getattr(usage, "prompt_tokens", None))
    answered_by = model if isinstance(model, str) and model else info.model
    attributes.update(usage_attributes(info, answered_by, (tokens, None, 0, 0)))
    return attributes


RESPONSE_READERS: Final = {
    "chat": chat_response,
    "responses": responses_response,
    "embeddings": embeddings_response,
}
