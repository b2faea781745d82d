"""The request side of an OpenAI call: who is called, what is asked, with what content.

Provider detection
    The client's base URL names the provider (``gen_ai.provider.name``): Azure
    OpenAI clients and ``*.openai.azure.com`` are ``azure.ai.openai``; known hosted
    APIs (OpenRouter, Together, Groq, DeepSeek, Mistral, Fireworks, xAI, Gemini's
    OpenAI endpoint…) by host; a host or port that says Ollama (11434) or vLLM
    (a host named ``vllm``) by that; any other host speaks OpenAI's API and is
    reported as ``openai``. ``OpenAIInstrumentor().instrument(providers={"llm.internal":
    "vllm"})`` adds hosts.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping
from typing import Any, Final

from pyflare import semconv as sc
from pyflare._runtime import STATE
from pyflare.instrumentation._base import content_digest, json_text, preview

__all__ = ["CallInfo", "Endpoint", "endpoint", "provider_for", "request_attributes"]

_KNOWN_HOSTS: Final = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.openai"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
    ("api.together.ai", "together_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.fireworks.ai", "fireworks"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cerebras.ai", "cerebras"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("router.huggingface.co", "huggingface"),
)
_OLLAMA_PORT = 11434

# Request parameter -> GenAI attribute, for plain numbers.
_CHAT_PARAMS: Final = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
)
_RESPONSES_PARAMS: Final = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
)


class Endpoint:
    """Where a client sends its calls: provider name, host and port."""

    __slots__ = ("address", "port", "provider", "url")

    def __init__(self, url: object, provider: str, address: str | None, port: int | None) -> None:
        self.url = url
        self.provider = provider
        self.address = address
        self.port = port


_endpoints: weakref.WeakKeyDictionary[Any, Endpoint] = weakref.WeakKeyDictionary()


def provider_for(host: str, port: int | None, extra: Mapping[str, str]) -> str:
    """The ``gen_ai.provider.name`` for a host (see the module docstring)."""
    host = host.lower()
    for suffix, name in extra.items():
        if host == suffix or host.endswith("." + suffix.lstrip(".")):
            return name
    for suffix, name in _KNOWN_HOSTS:
        if host == suffix or host.endswith(suffix if suffix[0] == "." else "." + suffix):
            return name
    if "ollama" in host or port == _OLLAMA_PORT:
        return "ollama"
    if "vllm" in host:
        return "vllm"
    return "openai"


def endpoint(client: Any, azure_types: tuple[type, ...], extra: Mapping[str, str]) -> Endpoint:
    """The endpoint of an openai client, cached per client until its base URL changes."""
    url = getattr(client, "base_url", None)
    try:
        found = _endpoints.get(client)
    except TypeError:  # not weak-referenceable: no cache
        found = None
    if found is not None and found.url is url:
        return found
    host = getattr(url, "host", None) or ""
    port = getattr(url, "port", None)
    if azure_types and isinstance(client, azure_types):
        provider = "azure.ai.openai"
    else:
        provider = provider_for(host, port, extra)
    found = Endpoint(url, provider, host or None, port if type(port) is int else None)
    with contextlib.suppress(TypeError):  # not weak-referenceable: no cache
        _endpoints[client] = found
    return found


class CallInfo:
    """What one call's response side needs from its request."""

    __slots__ = ("estimate_input", "model", "operation", "provider", "start_ns")

    def __init__(self, operation: str, model: str | None, provider: str, start_ns: int) -> None:
        self.operation = operation  # "chat", "responses" or "embeddings"
        self.model = model
        self.provider = provider
        self.start_ns = start_ns
        # The request's content, kept for a token estimate when a stream has no usage.
        self.estimate_input: Any = None


def request_attributes(
    operation: str, kwargs: Mapping[str, Any], where: Endpoint, info: CallInfo
) -> dict[str, Any]:
    """The span's attributes known before the call (content per the capture setting)."""
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: "embeddings" if operation == "embeddings" else "chat",
        sc.GEN_AI_PROVIDER_NAME: where.provider,
    }
    if info.model is not None:
        attributes[sc.GEN_AI_REQUEST_MODEL] = info.model
    if where.address is not None:
        attributes[sc.SERVER_ADDRESS] = where.address
        if where.port is not None:
            attributes["server.port"] = where.port
    content: Any = None
    if operation == "chat":
        _numbers(kwargs, _CHAT_PARAMS, attributes)
        stop = kwargs.get("stop")
        if isinstance(stop, str):
            attributes["gen_ai.request.stop_sequences"] = (stop,)
        elif isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
            attributes["gen_ai.request.stop_sequences"] = tuple(stop)
        n = kwargs.get("n")
        if type(n) is int and n != 1:
            attributes["gen_ai.request.choice.count"] = n
        _output_type(kwargs.get("response_format"), attributes)
        messages = kwargs.get("messages")
        if isinstance(messages, list | tuple):
            content = messages
    elif operation == "responses":
        _numbers(kwargs, _RESPONSES_PARAMS, attributes)
        text = kwargs.get("text")
        if isinstance(text, Mapping):
            _output_type(text.get("format"), attributes)
        conversation = kwargs.get("conversation")
        if isinstance(conversation, Mapping):
            conversation = conversation.get("id")
        if isinstance(conversation, str):
            attributes[sc.GEN_AI_CONVERSATION_ID] = conversation
        given = kwargs.get("input")
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            content = {"instructions": instructions, "input": given}
        elif isinstance(given, str | list | tuple):
            content = given
    else:
        dimensions = kwargs.get("dimensions")
        if type(dimensions) is int:
            attributes["gen_ai.embeddings.dimension.count"] = dimensions
        encoding = kwargs.get("encoding_format")
        if isinstance(encoding, str):
            attributes["gen_ai.request.encoding_formats"] = (encoding,)
        given = kwargs.get("input")
        if isinstance(given, str | list | tuple):
            content = given
    tier = kwargs.get("service_tier")
    if isinstance(tier, str):
        attributes["openai.request.service_tier"] = tier
    if content is not None:
        info.estimate_input = content
        if STATE.capture_inputs:
            text = json_text(content)
            attributes[sc.INPUT_PREVIEW] = preview(text)
            attributes[sc.INPUT_HASH] = content_digest(text, json=type(content) is not str)
    return attributes


def _numbers(
    kwargs: Mapping[str, Any], params: tuple[tuple[str, str], ...], attributes: dict[str, Any]
) -> None:
    for param, key in params:
        value = kwargs.get(param)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[key] = value


def _output_type(response_format: Any, attributes: dict[str, Any]) -> None:
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            attributes["gen_ai.output.type"] = "json"
        elif kind == "text":
            attributes["gen_ai.output.type"] = "text"
    elif isinstance(response_format, type):  # a pydantic model class (structured output)
        attributes["gen_ai.output.type"] = "json"
