"""What the demo's services talk about: questions, models, prices, transactions."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson

__all__ = [
    "AGENT_MODEL",
    "AGENT_TASKS",
    "FEATURE_LOOKUP",
    "MODELS",
    "PERSONAL",
    "QUESTIONS",
    "RAG_MODELS",
    "RAG_MODEL_WEIGHTS",
    "RERANK",
    "SEARCH",
    "SERVICES",
    "USERS",
    "USER_WEIGHTS",
    "compact_json",
    "cost_micros",
    "fraud_score",
    "messages",
    "transaction",
]

# service name -> (service.version, telemetry.sdk.language)
SERVICES: dict[str, tuple[str, str]] = {
    "rag-api": ("1.14.2", "python"),
    "support-agent": ("0.9.0", "python"),
    "fraud-scoring": ("2026.03.1", "python"),
}

# Chat model -> (provider, milliseconds per output token). The answering model is
# reported under the name asked for, so each model is one row in a summary.
MODELS: dict[str, tuple[str, float]] = {
    "gpt-4o-mini": ("openai", 9.0),
    "gpt-4o": ("openai", 14.0),
    "claude-3-5-haiku-20241022": ("anthropic", 12.0),
}
RAG_MODELS = list(MODELS)
RAG_MODEL_WEIGHTS = [0.7, 0.2, 0.1]
AGENT_MODEL = "claude-3-5-sonnet-20241022"

# Sixty users; the n-th is 1/n as busy as the first.
USERS = [f"user-{n:03d}" for n in range(1, 61)]
USER_WEIGHTS = [1 / n for n in range(1, 61)]

# The attributes of the steps that never change.
SEARCH: dict[str, Any] = {
    "pyflare.span.kind": "retriever",
    "openinference.span.kind": "RETRIEVER",
    "db.system.name": "qdrant",
    "db.collection.name": "help-center",
    "retrieval.top_k": 8,
}
RERANK: dict[str, Any] = {
    "pyflare.span.kind": "reranker",
    "pyflare.model.id": "rerank-english-v3.0",
    "pyflare.provider": "cohere",
}
FEATURE_LOOKUP: dict[str, Any] = {"db.system.name": "redis", "db.operation.name": "HGETALL"}

# US dollars per million tokens (input, output): the providers' list prices when
# these models were current. A dollar per million tokens is a micro-dollar a token.
_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "claude-3-5-haiku-20241022": (0.80, 4.00),
    "text-embedding-3-small": (0.02, 0.0),
}


def cost_micros(model: str, input_tokens: int, output_tokens: int) -> int:
    """What a call cost, in whole micro-dollars."""
    price_in, price_out = _PRICES[model]
    return round(input_tokens * price_in + output_tokens * price_out)


def compact_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def messages(role: str, text: str, finish_reason: str | None = None) -> str:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` holding one text message."""
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return compact_json([message])


# (question, answer) pairs a help-center chatbot sees.
QUESTIONS: list[tuple[str, str]] = [
    (
        "How do I reset my password?",
        "Open Settings → Security and choose Reset password; we email you a link "
        "that stays valid for 30 minutes.",
    ),
    (
        "Can I export my data to CSV?",
        "Yes. In Reports, pick the date range and choose Export → CSV. Exports over "
        "100k rows arrive by email.",
    ),
    (
        "Why was I charged twice this month?",
        "A second charge usually means a plan change mid-cycle: you paid the prorated "
        "difference. Billing → Invoices lists both with the reason.",
    ),
    (
        "How do I add a teammate to my workspace?",
        "Go to Workspace → Members → Invite, enter their email and pick a role. "
        "Admins can change roles later.",
    ),
    (
        "Does the API have rate limits?",
        "Yes: 600 requests per minute per key on the Team plan, 3000 on Business. "
        "Responses carry X-RateLimit-Remaining.",
    ),
    (
        "How can I cancel my subscription?",
        "Billing → Plan → Cancel subscription. You keep access until the end of the "
        "paid period and can export everything before then.",
    ),
    (
        "Is my data encrypted at rest?",
        "All data is encrypted at rest with AES-256 and in transit with TLS 1.2+. "
        "Business plans can bring their own keys.",
    ),
    (
        "Where can I find my invoices?",
        "Billing → Invoices has every invoice as a PDF; you can also add an address "
        "that receives them by email.",
    ),
    (
        "How do I connect the Slack integration?",
        "Integrations → Slack → Connect, then approve the permissions in Slack and "
        "choose the channel for notifications.",
    ),
    (
        "Can I change the email on my account?",
        "Yes, in Profile → Email. We send a confirmation to the new address before "
        "the change takes effect.",
    ),
    (
        "What happens when my trial ends?",
        "Your workspace becomes read-only until you choose a plan; nothing is deleted for 30 days.",
    ),
    (
        "How do I enable two-factor authentication?",
        "Settings → Security → Two-factor authentication: scan the QR code with an "
        "authenticator app and save the recovery codes.",
    ),
]

# Openings that carry personal data, for the server's PII masking to find.
PERSONAL = [
    "Hi, I'm jane.doe@example.com.",
    "You can reach me on +1 415 555 0134.",
    "My account email is m.rossi@example.org.",
]

# (request, tool, tool result, reply) for the support agent.
AGENT_TASKS: list[tuple[str, str, str, str]] = [
    (
        "Where is my order 48213?",
        "lookup_order",
        '{"order": 48213, "status": "shipped", "carrier": "UPS", "eta": "2 days"}',
        "Order 48213 shipped with UPS and should arrive in about two days.",
    ),
    (
        "I want to return the headphones from order 47790.",
        "create_return",
        '{"order": 47790, "rma": "RMA-5521", "label": "sent"}',
        "Your return RMA-5521 is open; the shipping label is in your inbox.",
    ),
    (
        "Can you change the delivery address for order 48877?",
        "update_address",
        '{"order": 48877, "updated": false, "reason": "already packed"}',
        "Order 48877 is already packed, so the address can't change; I can reroute it "
        "once it ships.",
    ),
    (
        "Has my refund for order 46001 gone through?",
        "lookup_refund",
        '{"order": 46001, "refund": "issued", "amount": 59.90}',
        "Yes, a refund of 59.90 was issued; banks take 3 to 5 business days to show it.",
    ),
]

_MERCHANTS = ["grocery", "electronics", "travel", "restaurants", "fashion", "gaming", "crypto"]
_COUNTRIES = ["US", "GB", "DE", "FR", "CA", "BR", "NG", "VN", "RU"]
# Weights of the merchant categories and countries, before and after the drift.
_MERCHANT_WEIGHTS = ([30, 20, 10, 25, 10, 4, 1], [15, 25, 10, 10, 10, 15, 15])
_COUNTRY_WEIGHTS = ([45, 15, 12, 10, 10, 3, 2, 2, 1], [15, 5, 5, 5, 5, 20, 18, 17, 10])
_RISKY_MERCHANTS = {"gaming": 0.8, "crypto": 1.6, "electronics": 0.4}
_RISKY_COUNTRIES = {"NG": 1.0, "VN": 0.8, "RU": 1.2, "BR": 0.5}


def transaction(rng: random.Random, *, drifted: bool) -> dict[str, Any]:
    """The features of one card payment; after the drift, a different population."""
    shift = int(drifted)
    return {
        "amount": round(rng.lognormvariate(math.log(140.0 if drifted else 45.0), 0.9), 2),
        "merchant_category": rng.choices(_MERCHANTS, _MERCHANT_WEIGHTS[shift])[0],
        "country": rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS[shift])[0],
        "card_present": rng.random() < (0.35 if drifted else 0.7),
        "hour": int(rng.triangular(0, 24, 15)) % 24,
        "account_age_days": int(rng.expovariate(1 / (120 if drifted else 700))),
        "txn_count_24h": int(rng.expovariate(1 / (6 if drifted else 2.5))),
    }


def fraud_score(features: dict[str, Any]) -> float:
    """The model's probability of fraud: a logistic function of the features."""
    logit = -6.0
    logit += 0.9 * math.log1p(features["amount"] / 100)
    logit += _RISKY_MERCHANTS.get(features["merchant_category"], 0.0)
    logit += _RISKY_COUNTRIES.get(features["country"], 0.0)
    logit += 0.0 if features["card_present"] else 1.1
    logit += 1.2 if features["account_age_days"] < 30 else 0.0
    logit += 0.15 * min(features["txn_count_24h"], 20)
    logit += 0.6 if features["hour"] < 5 else 0.0
    return 1 / (1 + math.exp(-logit))
