"""The traces the demo's services make, planned in time relative to their start."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanKind

from pyflare_server.demo import data

__all__ = ["MS", "S", "SpanPlan", "TracePlan", "Traffic"]

MS = 1_000_000
S = 1_000_000_000
ROOT = 0


@dataclass
class SpanPlan:
    name: str
    parent: int | None
    start: int  # ns from the trace's start
    end: int
    kind: SpanKind
    attributes: dict[str, Any]
    error: str | None = None
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)


class TracePlan:
    """One trace: a root, then children one after another along a cursor.

    Spans are listed parents first; times are nanoseconds from the trace's start.
    """

    def __init__(self, service: str, root: str, attributes: dict[str, Any]) -> None:
        self.service = service
        self.spans = [SpanPlan(root, None, 0, 0, SpanKind.SERVER, attributes)]
        self.cursor = 0

    @property
    def root(self) -> SpanPlan:
        return self.spans[ROOT]

    def then(
        self,
        name: str,
        duration: int,
        attributes: dict[str, Any],
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> SpanPlan:
        """A child of the root starting at the cursor; the cursor moves to its end."""
        span = SpanPlan(name, ROOT, self.cursor, self.cursor + duration, kind, attributes)
        self.spans.append(span)
        self.cursor = span.end
        return span

    def wait(self, duration: int) -> None:
        self.cursor += duration

    def finish(self, tail: int) -> TracePlan:
        """End the root ``tail`` after the cursor."""
        self.root.end = self.cursor + tail
        return self

    def fail(self, span: SpanPlan, exception_type: str, message: str) -> None:
        """Mark ``span`` failed, with the exception event an SDK records."""
        span.error = f"{exception_type}: {message}"
        stack = (
            "Traceback (most recent call last):\n"
            f'  File "app/{self.service.replace("-", "_")}.py", line 88, in {span.name}\n'
            f"{exception_type}: {message}"
        )
        event = {
            "exception.type": exception_type,
            "exception.message": message,
            "exception.stacktrace": stack,
        }
        span.events.append(("exception", span.end, event))

    @property
    def failed(self) -> bool:
        return any(span.error for span in self.spans)

    @property
    def duration(self) -> int:
        return max(span.end for span in self.spans)


class Traffic:
    """Plans the traces of the three services from one random generator."""

    def __init__(self, seed: int, drift_at_ns: int) -> None:
        self.rng = random.Random(seed)
        self.drift_at_ns = drift_at_ns
        self.sessions: dict[str, tuple[str, int]] = {}

    def ms(self, median: float, sigma: float) -> int:
        """A log-normal duration in ns around ``median`` milliseconds."""
        return max(1, int(self.rng.lognormvariate(math.log(median), sigma) * MS))

    def who(self) -> dict[str, str]:
        """A user (a few are much busier than the rest) and their current session."""
        rng = self.rng
        user = rng.choices(data.USERS, data.USER_WEIGHTS)[0]
        session, left = self.sessions.get(user, ("", 0))
        if left <= 0:
            session, left = f"sess-{rng.getrandbits(48):012x}", rng.randint(1, 8)
        self.sessions[user] = (session, left - 1)
        return {"user.id": user, "session.id": session}

    def plan(self, at_ns: int) -> TracePlan:
        """The next trace, for the instant ``at_ns`` (after the drift, the classifier drifts)."""
        roll = self.rng.random()
        if roll < 0.55:
            return self.rag()
        if roll < 0.70:
            return self.agent()
        return self.fraud(drifted=at_ns >= self.drift_at_ns)

    # -- rag-api: embeddings, retrieval, a chat model --------------------------

    def rag(self) -> TracePlan:
        rng = self.rng
        question, answer = rng.choice(data.QUESTIONS)
        if rng.random() < 0.08:
            question = rng.choice(data.PERSONAL) + " " + question
        plan = TracePlan(
            "rag-api",
            "answer_question",
            {
                "pyflare.span.kind": "chain",
                "openinference.span.kind": "CHAIN",
                "pyflare.input.preview": question,
                "pyflare.feature_id": "support-chat",
                "pyflare.team": "support",
                "http.route": "/v1/answer",
                **self.who(),
            },
        )
        plan.wait(self.ms(2, 0.4))
        embedder = "text-embedding-3-small"
        tokens = max(3, int(len(question.split()) * 1.3))
        plan.then(
            f"embeddings {embedder}",
            self.ms(45, 0.5),
            {
                "gen_ai.operation.name": "embeddings",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": embedder,
                "gen_ai.usage.input_tokens": tokens,
                "pyflare.cost.micros": data.cost_micros(embedder, tokens, 0),
            },
            SpanKind.CLIENT,
        )
        plan.wait(self.ms(1, 0.3))
        search = plan.then("vector_search", self.ms(30, 0.6), data.SEARCH, SpanKind.CLIENT)
        if rng.random() < 0.005:
            plan.fail(
                search, "qdrant_client.http.exceptions.ResponseHandlingException", "timed out"
            )
            plan.fail(plan.root, "RetrievalError", "the help-center index did not answer")
            return plan.finish(self.ms(1, 0.3))
        if rng.random() < 0.5:
            plan.then("rerank", self.ms(60, 0.4), data.RERANK, SpanKind.CLIENT)
        model = rng.choices(data.RAG_MODELS, data.RAG_MODEL_WEIGHTS)[0]
        roll = rng.random()
        if roll < 0.02:  # rate limited, retried after a back-off
            self.chat(plan, model, question, answer, failure="429")
            plan.wait(self.ms(900, 0.3))
        timed_out = 0.02 <= roll < 0.035
        self.chat(plan, model, question, answer, failure="timeout" if timed_out else None)
        if timed_out:
            plan.fail(plan.root, "openai.APITimeoutError", "Request timed out.")
        else:
            plan.root.attributes["pyflare.output.preview"] = answer
        return plan.finish(self.ms(3, 0.4))

    def chat(
        self, plan: TracePlan, model: str, question: str, answer: str, *, failure: str | None
    ) -> None:
        """A chat model call (OTel GenAI attributes); ``failure``: "429", "timeout" or None."""
        rng = self.rng
        provider, ms_per_token = data.MODELS[model]
        input_tokens = max(300, int(rng.gauss(1400, 350)) + len(question.split()) * 2)
        output_tokens = max(12, int(rng.lognormvariate(math.log(140), 0.5)))
        finish = "length" if output_tokens > 480 else "stop"
        output_tokens = min(output_tokens, 512)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.input.messages": data.messages("user", question),
        }
        if failure == "429":
            duration = self.ms(120, 0.3)
        elif failure == "timeout":
            duration = int(rng.uniform(30.0, 30.2) * S)
        else:
            per_token = ms_per_token * rng.uniform(0.8, 1.3) * MS
            duration = self.ms(350, 0.45) + int(output_tokens * per_token)
            attributes.update(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):016x}",
                    "gen_ai.response.finish_reasons": (finish,),
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                    "gen_ai.output.messages": data.messages("assistant", answer, finish),
                    "pyflare.cost.micros": data.cost_micros(model, input_tokens, output_tokens),
                }
            )
        span = plan.then(f"chat {model}", duration, attributes, SpanKind.CLIENT)
        if failure is not None:
            attributes["error.type"] = failure
        if failure == "429":
            message = f"Error code: 429 - Rate limit reached for {model} on tokens per min (TPM)"
            plan.fail(span, "openai.RateLimitError", message)
        elif failure == "timeout":
            plan.fail(span, "openai.APITimeoutError", "Request timed out.")

    # -- support-agent: OpenInference attributes, a tool call ------------------

    def agent(self) -> TracePlan:
        rng = self.rng
        request, tool, tool_result, reply = rng.choice(data.AGENT_TASKS)
        plan = TracePlan(
            "support-agent",
            "support_agent",
            {
                "openinference.span.kind": "AGENT",
                "input.value": request,
                "output.value": reply,
                "pyflare.feature_id": "order-help",
                **self.who(),
            },
        )
        plan.wait(self.ms(3, 0.3))
        for step, text in enumerate((f"call {tool}", reply)):
            prompt = int(rng.gauss(900, 150)) + 400 * step
            completion = max(8, int(rng.lognormvariate(math.log(60 + 60 * step), 0.4)))
            plan.then(
                "ChatAnthropic",
                self.ms(600, 0.4) + completion * 20 * MS,
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": data.AGENT_MODEL,
                    "llm.provider": "anthropic",
                    "llm.token_count.prompt": prompt,
                    "llm.token_count.completion": completion,
                    "llm.token_count.total": prompt + completion,
                    "input.value": request,
                    "output.value": text,
                },
                SpanKind.CLIENT,
            )
            if step == 0:
                call = plan.then(
                    tool,
                    self.ms(80, 0.7),
                    {
                        "openinference.span.kind": "TOOL",
                        "tool.name": tool,
                        "input.value": request,
                        "output.value": tool_result,
                    },
                )
                if rng.random() < 0.03:
                    plan.fail(call, "OrderServiceError", "503 Service Unavailable")
        return plan.finish(self.ms(2, 0.3))

    # -- fraud-scoring: a classifier whose inputs drift ------------------------

    def fraud(self, *, drifted: bool) -> TracePlan:
        rng = self.rng
        features = data.transaction(rng, drifted=drifted)
        score = data.fraud_score(features)
        label = "fraud" if score >= 0.5 else "legit"
        plan = TracePlan(
            "fraud-scoring",
            "POST /score",
            {"http.route": "/score", "pyflare.feature_id": "checkout"},
        )
        plan.wait(self.ms(0.4, 0.3))
        lookup = plan.then("fetch_features", self.ms(3, 0.5), data.FEATURE_LOOKUP, SpanKind.CLIENT)
        if rng.random() < 0.005:
            plan.fail(lookup, "redis.exceptions.TimeoutError", "Timeout reading from socket")
            plan.fail(
                plan.root, "FeatureStoreError", "features unavailable; transaction not scored"
            )
            return plan.finish(self.ms(0.3, 0.3))
        attributes: dict[str, Any] = {
            "pyflare.span.kind": "inference",
            "pyflare.inference.type": "classification",
            "pyflare.model.id": "fraud-detector",
            "pyflare.model.version": "2026.03",
            "pyflare.input.preview": data.compact_json(features),
            "pyflare.output.preview": f'{{"label":"{label}","score":{score:.4f}}}',
            "pyflare.prediction.label": label,
            "pyflare.prediction.score": round(score, 4),
        }
        attributes.update({f"pyflare.feature.{k}": v for k, v in features.items()})
        plan.then("predict fraud-detector", self.ms(7, 0.35), attributes)
        return plan.finish(self.ms(0.3, 0.3))
