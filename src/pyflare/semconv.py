"""Attribute names PyFlare reads and writes.

Three vocabularies describe the same things: PyFlare's own (``pyflare.*``), the
OpenTelemetry GenAI semantic conventions (``gen_ai.*``) and OpenInference
(``llm.*``, ``openinference.*``). ML fields are read from them in that order.
"""

from __future__ import annotations

from typing import Final

# --- PyFlare's own -----------------------------------------------------------
SPAN_KIND: Final = "pyflare.span.kind"
MODEL_ID: Final = "pyflare.model.id"
MODEL_VERSION: Final = "pyflare.model.version"
INFERENCE_TYPE: Final = "pyflare.inference.type"
INPUT_PREVIEW: Final = "pyflare.input.preview"
INPUT_HASH: Final = "pyflare.input.hash"
OUTPUT_PREVIEW: Final = "pyflare.output.preview"
INPUT_TOKENS: Final = "pyflare.usage.input_tokens"
OUTPUT_TOKENS: Final = "pyflare.usage.output_tokens"
TOTAL_TOKENS: Final = "pyflare.usage.total_tokens"
COST_MICROS: Final = "pyflare.cost.micros"
# Set on a model call PyFlare could not price ("true"): its cost is NULL, never 0.
COST_UNPRICED: Final = "pyflare.cost.unpriced"
# Set when PyFlare counted or estimated the tokens instead of the provider ("true").
TOKENS_ESTIMATED: Final = "pyflare.tokens.estimated"
# Set ("true") on a framework's model-call span (LangChain) when the provider call
# inside it was recorded by a provider instrumentation (OpenAI) as its own span:
# that inner span carries the call's tokens and cost, so the call counts once.
USAGE_IN_CHILD: Final = "pyflare.usage.in_child"
CACHED_INPUT_TOKENS: Final = "pyflare.usage.cached_input_tokens"
REASONING_TOKENS: Final = "pyflare.usage.reasoning_tokens"
PROVIDER: Final = "pyflare.provider"
# Where a span's pyflare.cost.micros came from when PyFlare priced it ('user' or
# 'genai-prices'). A cost without it was given by the user and is never repriced.
COST_SOURCE: Final = "pyflare.cost.source"
# The catalogue or user model id the price was matched to (e.g. gpt-4o for gpt-4o-2024-08-06).
COST_PRICE_MODEL: Final = "pyflare.cost.price_model"
FEATURE_ID: Final = "pyflare.feature_id"
TEAM: Final = "pyflare.team"
CODE_FUNCTION: Final = "code.function.name"
# A model's input features and its prediction, one attribute each, for drift:
# pyflare.feature.<name> and pyflare.prediction.<label|score|value>.
FEATURE_PREFIX: Final = "pyflare.feature."
PREDICTION_PREFIX: Final = "pyflare.prediction."
# The model input's embedding vector (a float-array attribute), for embedding drift.
EMBEDDING: Final = "pyflare.embedding"

# Context keys; also the W3C baggage keys they travel under.
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"
ENVIRONMENT: Final = "deployment.environment.name"

# --- OpenTelemetry GenAI -----------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated in favour of provider.name
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # deprecated
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # deprecated
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
SERVER_ADDRESS: Final = "server.address"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"

# --- OpenInference -----------------------------------------------------------
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_MODEL_NAME: Final = "llm.model_name"
OI_PROVIDER: Final = "llm.provider"
OI_TOKEN_PROMPT: Final = "llm.token_count.prompt"
OI_TOKEN_COMPLETION: Final = "llm.token_count.completion"
OI_TOKEN_TOTAL: Final = "llm.token_count.total"
OI_TOKEN_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
OI_TOKEN_REASONING: Final = "llm.token_count.completion_details.reasoning"
OI_SYSTEM: Final = "llm.system"
OI_INPUT_VALUE: Final = "input.value"
OI_OUTPUT_VALUE: Final = "output.value"
EMBEDDING_MODEL_NAME: Final = "embedding.model_name"

# --- Where each fact is read from, first found wins --------------------------
PROVIDER_KEYS: Final = (PROVIDER, GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM, OI_PROVIDER, OI_SYSTEM)
CACHED_INPUT_TOKEN_KEYS: Final = (
    CACHED_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    OI_TOKEN_CACHE_READ,
)
REASONING_TOKEN_KEYS: Final = (
    REASONING_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    OI_TOKEN_REASONING,
)

# --- Vocabularies ------------------------------------------------------------
# PyFlare span kinds (what the span does) and the OTel SpanKind each maps to.
SPAN_KINDS: Final[dict[str, str]] = {
    "llm": "client",
    "embedding": "client",
    "chain": "internal",
    "tool": "internal",
    "retriever": "internal",
    "reranker": "internal",
    "agent": "internal",
    "guardrail": "internal",
    "evaluator": "internal",
    "workflow": "internal",
    "task": "internal",
    "inference": "internal",
    # OpenTelemetry's own kinds are accepted as they are.
    "internal": "internal",
    "client": "client",
    "server": "server",
    "producer": "producer",
    "consumer": "consumer",
}

INFERENCE_TYPES: Final = (
    "llm",
    "embedding",
    "classification",
    "regression",
    "object_detection",
    "custom",
)

# OpenInference span kind -> (PyFlare kind, inference_type or "").
OPENINFERENCE_KINDS: Final[dict[str, tuple[str, str]]] = {
    "LLM": ("llm", "llm"),
    "EMBEDDING": ("embedding", "embedding"),
    "CHAIN": ("chain", ""),
    "TOOL": ("tool", ""),
    "RETRIEVER": ("retriever", ""),
    "RERANKER": ("reranker", ""),
    "AGENT": ("agent", ""),
    "GUARDRAIL": ("guardrail", ""),
    "EVALUATOR": ("evaluator", ""),
}

# GenAI operation name -> inference_type.
GEN_AI_OPERATIONS: Final[dict[str, str]] = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "invoke_agent": "llm",
    "embeddings": "embedding",
}
