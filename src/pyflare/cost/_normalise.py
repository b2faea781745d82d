"""Model names and providers as spans report them, turned into what prices are keyed by.

Instrumentations name the same model many ways: ``gpt-4o``, ``gpt-4o-2024-08-06``,
``openai/gpt-4o``, ``models/gemini-1.5-pro``, ``anthropic.claude-3-5-sonnet-20240620-v1:0``,
``claude-3-5-sonnet@20240620``. :func:`model_candidates` lists the names worth trying,
most specific first; a price lookup takes the first that matches. Providers come from
``gen_ai.provider.name`` / ``llm.provider`` / ``pyflare.provider`` (many spellings), a
model prefix, or the API's base URL; :func:`canonical_provider` maps them to one id
(the catalogue's ids: ``openai``, ``azure``, ``anthropic``, ``google``, ``aws``…).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["SELF_HOSTED", "canonical_provider", "model_candidates", "provider_from_url"]

# Spellings of a provider (GenAI semconv, OpenInference, LiteLLM prefixes, common
# usage) -> the catalogue's provider id.
_PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "az.ai.openai": "azure",
    "anthropic": "anthropic",
    "aws": "aws",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon": "aws",
    "google": "google",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "vertex": "google",
    "mistral": "mistral",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "databricks": "databricks",
    "moonshotai": "moonshotai",
    "moonshot": "moonshotai",
    "voyageai": "voyageai",
    "voyage": "voyageai",
    "ollama": "ollama",
    "vllm": "vllm",
    "lmstudio": "lmstudio",
    "llama.cpp": "llama.cpp",
    "tgi": "tgi",
}

#: Providers that serve models on the user's own machines: no per-token price unless
#: the user gives one (a model name they share with a paid API must not borrow its price).
SELF_HOSTED = frozenset({"ollama", "vllm", "lmstudio", "llama.cpp", "tgi"})

# Base URLs the catalogue's own patterns don't know (local servers).
_URL_PROVIDERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|[./])ollama([./:]|$)|:11434$"), "ollama"),
    (re.compile(r"(^|[./])openai\.azure\.com$|(^|[./])azure\.com$"), "azure"),
)


def canonical_provider(name: str | None) -> str | None:
    """The provider id for a spelling of a provider name, or the name lower-cased."""
    if name is None:
        return None
    key = name.strip().lower()
    if not key:
        return None
    return _PROVIDER_ALIASES.get(key, key)


def provider_from_url(base_url: str | None) -> str | None:
    """A provider id known from an API base URL without the catalogue (local servers)."""
    if not base_url:
        return None
    text = base_url.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").netloc or text
    for pattern, provider in _URL_PROVIDERS:
        if pattern.search(host):
            return provider
    return None


# Date and version suffixes, most specific first. Each is only tried when the name
# as given has no price, so a catalogue entry for a dated name wins.
_SUFFIXES = (
    re.compile(r"-v\d+(:\d+)?$"),  # Bedrock: ...-v1:0
    re.compile(r":\d+$"),  # Bedrock throughput suffix
    re.compile(r"[-@]20\d{2}-?[01]\d-?[0-3]\d$"),  # -2024-08-06, -20240806, @20240620
    re.compile(r"-[01]\d[0-3]\d$"),  # -0613, -0125
)
# Prefixes that name a route rather than the model (Bedrock regions, Google's models/).
_ROUTE_PREFIX = re.compile(r"^(models/|(us|eu|apac|global)\.)")


def model_candidates(model_id: str) -> tuple[tuple[str, str | None], ...]:
    """The names to look a model up by, each with the provider its prefix names (or None).

    ``"openai/gpt-4o-2024-08-06"`` gives ``("gpt-4o-2024-08-06", "openai")``,
    ``("gpt-4o", "openai")``, ``("openai/gpt-4o-2024-08-06", None)``.
    """
    name = model_id.strip().lower()
    seen: dict[str, str | None] = {}

    def add(candidate: str, provider: str | None) -> None:
        if candidate and candidate not in seen:
            seen[candidate] = provider

    add(name, None)
    provider: str | None = None
    base = _ROUTE_PREFIX.sub("", name)
    if "/" in base:
        prefix, rest = base.split("/", 1)
        provider = canonical_provider(prefix) if prefix in _PROVIDER_ALIASES else None
        if provider is not None or "/" not in rest:
            base = rest
    elif "." in base.split("-", 1)[0]:
        # Bedrock ids: anthropic.claude-..., meta.llama3-...
        prefix, rest = base.split(".", 1)
        if prefix in _PROVIDER_ALIASES or prefix in {"meta", "amazon", "ai21", "cohere"}:
            base = rest
    add(base, provider)
    stripped = base
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            shorter = pattern.sub("", stripped)
            if shorter != stripped and shorter:
                stripped = shorter
                add(stripped, provider)
                changed = True
    items = list(seen.items())
    if provider is not None:  # "openai/gpt-4o": the maker's own name first, the route's last
        items = items[1:] + items[:1]
    return tuple(items)
