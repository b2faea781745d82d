"""What PyFlare records of a LangChain run: its name, the model call's fields, usage, documents.

Plain functions from the objects LangChain hands its callbacks (the serialized
runnable, ``invocation_params`` and ``metadata``, an ``LLMResult``, ``Document``
lists) to span attributes. Each one tolerates missing or odd values: what can't
be read is left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

from pyflare import semconv as sc
from pyflare._runtime import STATE
from pyflare.tracing.capture import render

__all__ = [
    "MAX_DOCUMENTS",
    "USAGE_KEYS",
    "content",
    "document_attributes",
    "llm_request_attributes",
    "llm_result_attributes",
    "messages_content",
    "output_text",
    "run_name",
]

#: Retrieved documents recorded per retriever span; the rest are counted only. Four
#: attributes each, within OpenTelemetry's default limit of 128 attributes per span.
MAX_DOCUMENTS: Final = 20
DOCUMENT_COUNT: Final = "pyflare.retrieval.document_count"

# LangChain's ls_provider -> the OTel GenAI provider name, where they differ.
_PROVIDERS: Final[dict[str, str]] = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "google_genai": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
}
_MODEL_PARAMS: Final = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")
_ROLES: Final[dict[str, str]] = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "chat": "user",
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    """The run's name: the one it was given, else the runnable's, else ``default``."""
    name = _text(kwargs.get("name"))
    if name is not None:
        return name
    if isinstance(serialized, Mapping):
        name = _text(serialized.get("name"))
        if name is not None:
            return name
        ident = serialized.get("id")
        if isinstance(ident, list) and ident and _text(ident[-1]) is not None:
            return str(ident[-1])
    return default


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def llm_request_attributes(
    metadata: Mapping[str, Any] | None, params: Mapping[str, Any] | None, operation: str
) -> tuple[str | None, dict[str, Any]]:
    """(model, the GenAI request attributes) of a model call about to start."""
    meta = metadata if isinstance(metadata, Mapping) else {}
    invocation = params if isinstance(params, Mapping) else {}
    model = _text(meta.get("ls_model_name"))
    if model is None:
        model = next((m for k in _MODEL_PARAMS if (m := _text(invocation.get(k)))), None)
    attributes: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation}
    if model is not None:
        attributes[sc.GEN_AI_REQUEST_MODEL] = model
    provider = _text(meta.get("ls_provider"))
    if provider is not None:
        attributes[sc.GEN_AI_PROVIDER_NAME] = _PROVIDERS.get(provider.lower(), provider.lower())
    for key, meta_key, param_key in (
        ("gen_ai.request.temperature", "ls_temperature", "temperature"),
        ("gen_ai.request.max_tokens", "ls_max_tokens", "max_tokens"),
        ("gen_ai.request.top_p", "", "top_p"),
    ):
        value = _number(meta.get(meta_key)) if meta_key else None
        value = value if value is not None else _number(invocation.get(param_key))
        if value is not None:
            attributes[key] = value
    stop = meta.get("ls_stop") or invocation.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = tuple(stop)
    return model, attributes


def _message_entry(message: Any) -> dict[str, Any]:
    role = getattr(message, "type", None)
    entry: dict[str, Any] = {"role": _ROLES.get(role, role) if isinstance(role, str) else "user"}
    entry["content"] = getattr(message, "content", message)
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls:
        entry["tool_calls"] = tool_calls
    return entry


def messages_content(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Chat messages as ``[{"role": ..., "content": ...}]`` for the input preview."""
    return [_message_entry(m) for m in messages]


def content(value: Any) -> Any:
    """A run's input or output, with LangChain messages and prompt values made compact.

    A message becomes ``{"role", "content"}`` (plus its tool calls), a prompt value
    its messages; lists and dicts of them are converted one level deep. Anything
    else is returned as it is, for the preview renderer.
    """
    if isinstance(value, BaseMessage):
        return _message_entry(value)
    if isinstance(value, PromptValue):
        return messages_content(value.to_messages())
    if isinstance(value, list) and any(isinstance(v, BaseMessage) for v in value[:16]):
        return [_message_entry(v) if isinstance(v, BaseMessage) else v for v in value]
    if isinstance(value, dict) and any(
        isinstance(v, BaseMessage | PromptValue | list) for v in value.values()
    ):
        return {
            k: content(v) if isinstance(v, BaseMessage | PromptValue | list) else v
            for k, v in value.items()
        }
    return value


def _generation_text(generation: Any) -> str:
    message = getattr(generation, "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if isinstance(content, str) and content:
        return content
    if isinstance(content, list) and content:
        texts = [
            block if isinstance(block, str) else block.get("text", "")
            for block in content
            if isinstance(block, str | dict)
        ]
        joined = "".join(t for t in texts if isinstance(t, str))
        if joined:
            return joined
    text = getattr(generation, "text", "")
    return text if isinstance(text, str) else ""


def output_text(generations: Sequence[Any]) -> str:
    """The text of a run's first generation (tool calls as JSON when it has no text)."""
    if not generations:
        return ""
    first = generations[0]
    text = _generation_text(first)
    if text:
        return text
    tool_calls = getattr(getattr(first, "message", None), "tool_calls", None)
    if tool_calls:
        return render(tool_calls, max_chars=STATE.max_chars + STATE.preview_margin).preview
    return ""


def _int(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _usage(generations: Sequence[Any], llm_output: Mapping[str, Any] | None) -> dict[str, int]:
    """Token counts from ``usage_metadata`` (the first generation with it), else ``llm_output``."""
    found: dict[str, int] = {}
    for generation in generations:
        usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
        if not isinstance(usage, Mapping):
            continue
        # With n > 1 choices every message repeats the call's usage: read one, never sum.
        for key, name in (("input", "input_tokens"), ("output", "output_tokens")):
            value = _int(usage.get(name))
            if value is not None:
                found[key] = value
        input_details = usage.get("input_token_details")
        if isinstance(input_details, Mapping) and _int(input_details.get("cache_read")):
            found["cached"] = input_details["cache_read"]
        output_details = usage.get("output_token_details")
        if isinstance(output_details, Mapping) and _int(output_details.get("reasoning")):
            found["reasoning"] = output_details["reasoning"]
        if found:
            return found
    if not isinstance(llm_output, Mapping):
        return found
    usage = llm_output.get("token_usage") or llm_output.get("usage")
    if not isinstance(usage, Mapping):
        return found
    for key, names in (
        ("input", ("prompt_tokens", "input_tokens")),
        ("output", ("completion_tokens", "output_tokens")),
    ):
        value = next((v for n in names if (v := _int(usage.get(n))) is not None), None)
        if value is not None:
            found[key] = value
    cached = usage.get("prompt_tokens_details")
    if isinstance(cached, Mapping) and _int(cached.get("cached_tokens")):
        found["cached"] = cached["cached_tokens"]
    reasoning = usage.get("completion_tokens_details")
    if isinstance(reasoning, Mapping) and _int(reasoning.get("reasoning_tokens")):
        found["reasoning"] = reasoning["reasoning_tokens"]
    return found


def _response_metadata(generation: Any) -> Mapping[str, Any]:
    metadata = getattr(getattr(generation, "message", None), "response_metadata", None)
    return metadata if isinstance(metadata, Mapping) else {}


#: The token attributes of a model run's result.
USAGE_KEYS = (
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.CACHED_INPUT_TOKENS,
    sc.REASONING_TOKENS,
)


def llm_result_attributes(result: Any) -> tuple[dict[str, Any], bool]:
    """(GenAI response attributes of an ``LLMResult``, whether it reported token usage)."""
    batches = getattr(result, "generations", None) or [[]]
    generations = batches[0] if isinstance(batches, list) and batches else []
    llm_output = getattr(result, "llm_output", None)
    attributes: dict[str, Any] = {}
    usage = _usage(generations, llm_output)
    for key, name in zip(("input", "output", "cached", "reasoning"), USAGE_KEYS, strict=True):
        if key in usage:
            attributes[name] = usage[key]
    reasons: list[str] = []
    for generation in generations:
        info = getattr(generation, "generation_info", None)
        reason = info.get("finish_reason") if isinstance(info, Mapping) else None
        meta = _response_metadata(generation)
        reason = reason or meta.get("finish_reason") or meta.get("stop_reason")
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = tuple(reasons)
    meta = _response_metadata(generations[0]) if generations else {}
    output = llm_output if isinstance(llm_output, Mapping) else {}
    model = (
        _text(meta.get("model_name")) or _text(meta.get("model")) or _text(output.get("model_name"))
    )
    if model is not None:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = model
    response_id = _text(meta.get("id"))
    if response_id is not None:
        attributes["gen_ai.response.id"] = response_id
    return attributes, "input" in usage or "output" in usage


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, ValueError):
        return str(value)


def document_attributes(documents: Sequence[Any], with_content: bool) -> dict[str, Any]:
    """Retrieved documents in OpenInference's ``retrieval.documents.N.document.*`` attributes.

    Content and metadata are content: recorded only when ``with_content`` (output
    capture is on), content cut to the preview length. Ids and scores always.
    """
    attributes: dict[str, Any] = {DOCUMENT_COUNT: len(documents)}
    limit = STATE.max_chars + STATE.preview_margin
    for index, document in enumerate(documents[:MAX_DOCUMENTS]):
        prefix = f"retrieval.documents.{index}.document."
        metadata = getattr(document, "metadata", None)
        metadata = metadata if isinstance(metadata, Mapping) else {}
        doc_id = _text(getattr(document, "id", None)) or _text(metadata.get("id"))
        if doc_id is not None:
            attributes[prefix + "id"] = doc_id
        score = next(
            (
                s
                for k in ("score", "relevance_score")
                if (s := _number(metadata.get(k))) is not None
            ),
            None,
        )
        if score is not None:
            attributes[prefix + "score"] = float(score)
        if with_content:
            content = getattr(document, "page_content", None)
            if isinstance(content, str):
                attributes[prefix + "content"] = content[:limit]
            if metadata:
                attributes[prefix + "metadata"] = _json(metadata)[:limit]
    return attributes
