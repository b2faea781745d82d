"""LLM output drift in the drift processor: length, refusals and finish reasons per model."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _drift_spans import feed, processor, window_spans

from pyflare.drift import PredictionDriftConfig, PredictionDriftDetector
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline._drift_inputs import first_reason, output_text
from pyflare_server.receiver.decode import Signal

MODEL = "chat-bot"

ANSWER = "Open Settings, then Security, and choose Reset password. "
REFUSAL = "I'm sorry, but I can't help with that request."


def spans(attributes: Sequence[Mapping[str, Any]], *, window: int, error: bool = False) -> pa.Table:
    return window_spans(attributes, window=window, name="chat", error=error)


def chats(
    n: int,
    *,
    seed: int,
    tokens: float = 120.0,
    refusal_p: float = 0.02,
    length_p: float = 0.05,
    model: str = MODEL,
) -> list[dict[str, Any]]:
    """GenAI chat spans: a log-normal output length, some refusals, some cut by max_tokens."""
    rng = np.random.default_rng(seed)
    out = []
    counts = rng.lognormal(np.log(tokens), 0.4, n)
    refusals, cuts = rng.random(n) < refusal_p, rng.random(n) < length_p
    for count, refused, cut in zip(counts, refusals, cuts, strict=True):
        output_tokens = max(1, int(count))
        text = REFUSAL if refused else (ANSWER * (1 + output_tokens // 12))[: output_tokens * 4]
        finish = "length" if cut else "stop"
        message = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
        out.append(
            {
                "pyflare.model.id": model,
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.output_tokens": 9 if refused else output_tokens,
                "gen_ai.response.finish_reasons": (finish,),
                "gen_ai.output.messages": json.dumps([{**message, "finish_reason": finish}]),
            }
        )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "drift.duckdb") as opened:
        yield opened


def results(store: DuckDBSpanStore, model: str = MODEL) -> list[dict[str, Any]]:
    rows = store.drift_results(model, drift_type="prediction").to_pylist()
    return sorted(rows, key=lambda r: r["window_start"])


def drifted_after(store: DuckDBSpanStore, **change: Any) -> dict[str, Any]:
    """Reference window, a calm window, a changed one: the changed window's result."""
    drift = processor(store)
    feed(
        drift,
        spans(chats(300, seed=3), window=0),
        spans(chats(300, seed=11), window=1),
        spans(chats(300, seed=12, **change), window=2),
    )
    assert drift.flush() == 1
    assert drift.counters.errors == 0 and drift.counters.llm_outputs == 900
    calm, changed = results(store)
    assert not calm["is_drifted"] and calm["score"] < 0.5
    assert changed["is_drifted"] and changed["drift_type"] == "prediction"
    return changed


def test_a_longer_output_is_prediction_drift(store: DuckDBSpanStore) -> None:
    changed = drifted_after(store, tokens=200.0)
    scores = dict(changed["feature_scores"])
    assert scores["output_tokens"] > 0.5 and scores["output_length"] > 0.5
    details = json.loads(changed["details"])
    assert details["drift_type"] == "prediction"
    assert set(details["features"]) == {
        "output_length",
        "output_tokens",
        "refusal",
        "finish_reason",
    }
    reference = store.drift_reference(MODEL, "prediction")
    assert reference is not None and reference[1]["n_samples"] == 300
    detector = PredictionDriftDetector()
    detector.load_state(reference[0])
    assert detector.config.kind == "llm" and detector.config.fdr == "bh"


def test_a_higher_refusal_rate_is_prediction_drift(store: DuckDBSpanStore) -> None:
    changed = drifted_after(store, refusal_p=0.3)
    assert dict(changed["feature_scores"])["refusal"] > 0.5
    assert "refusal" in changed["explanation"]


def test_more_outputs_cut_by_max_tokens_is_prediction_drift(store: DuckDBSpanStore) -> None:
    changed = drifted_after(store, length_p=0.4)
    scores = dict(changed["feature_scores"])
    assert scores["finish_reason"] > 0.5 > scores["output_tokens"]


def test_calm_windows_score_low(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    seeds = [3, 13, 14, 15, 16]  # a frozen reference is one sample: 3 is a typical one
    feed(drift, *(spans(chats(300, seed=seed), window=i) for i, seed in enumerate(seeds)))
    drift.flush()
    rows = results(store)
    assert len(rows) == 4
    assert not any(r["is_drifted"] for r in rows)
    assert max(r["score"] for r in rows) < 0.5


def test_error_spans_are_not_outputs(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    feed(
        drift,
        spans(chats(100, seed=1), window=0),
        spans(chats(100, seed=2, refusal_p=1.0), window=0, error=True),
    )
    assert drift.counters.llm_outputs == 100


def test_batches_without_llm_spans_are_untouched(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    plain = spans([{"pyflare.model.id": MODEL, "http.route": "/x"}] * 10, window=0)
    embedding = spans(
        [{"pyflare.model.id": MODEL, "gen_ai.operation.name": "embeddings"}] * 10, window=0
    )
    no_model = spans([{"gen_ai.operation.name": "chat"}] * 10, window=0)
    feed(drift, plain, embedding, no_model, plain.slice(0, 0))
    assert drift.counters.spans == 0 and drift.flush() == 0


def test_every_llm_span_of_a_batch_becomes_an_output(store: DuckDBSpanStore) -> None:
    drift = processor(store, max_window_rows=100_000)
    batch = spans(chats(1000, seed=1), window=0)
    for _ in range(10):
        assert drift.process(Signal.TRACES, batch) is batch  # the batch goes on unchanged
    assert drift.counters.llm_outputs == 10_000


def test_explicit_predictions_win_over_llm_outputs(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    labelled = [{**a, "pyflare.prediction.label": "ok"} for a in chats(20, seed=1)]
    feed(drift, spans(labelled, window=0))
    assert drift.counters.llm_outputs == 0 and drift.counters.spans == 20
    # the model has classic predictions now: its plain LLM spans are not outputs either
    feed(drift, spans(chats(20, seed=2), window=0))
    assert drift.counters.llm_outputs == 0
    feed(drift, spans(chats(20, seed=3, model="other"), window=0))
    assert drift.counters.llm_outputs == 20


def test_an_uploaded_llm_reference_is_used(store: DuckDBSpanStore) -> None:
    detector = PredictionDriftDetector(PredictionDriftConfig(kind="llm"))
    detector.set_reference([ANSWER * 8] * 190 + [REFUSAL] * 10)
    store.put_drift_reference(MODEL, "prediction", detector.state(), n_samples=200)
    drift = processor(store)
    feed(drift, spans(chats(200, seed=1, refusal_p=0.05), window=0))
    drift.flush()
    (row,) = results(store)
    assert drift.counters.references_loaded == 1 and drift.counters.references_frozen == 0
    # the upload has texts only: output length and refusals are compared
    assert dict(row["feature_scores"]).keys() == {"output_length", "refusal"}


def test_a_classic_reference_is_not_used_for_llm_outputs(store: DuckDBSpanStore) -> None:
    detector = PredictionDriftDetector(PredictionDriftConfig(kind="classification"))
    detector.set_reference(["ok"] * 90 + ["fraud"] * 10)
    store.put_drift_reference(MODEL, "prediction", detector.state(), n_samples=100)
    drift = processor(store, auto_reference=False)
    feed(drift, spans(chats(200, seed=1), window=0))
    assert drift.flush() == 0
    assert drift.counters.skipped_windows == 1 and drift.counters.errors == 0
    assert drift.counters.references_loaded == 0


def test_openinference_llm_spans_are_outputs(store: DuckDBSpanStore) -> None:
    def agent(n: int, seed: int, tokens: float) -> list[dict[str, Any]]:
        rng = np.random.default_rng(seed)
        return [
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "claude",
                "llm.token_count.completion": int(count),
                "output.value": ANSWER * (1 + int(count) // 12),
            }
            for count in rng.lognormal(np.log(tokens), 0.4, n)
        ]

    drift = processor(store)
    feed(drift, spans(agent(200, 1, 60.0), window=0), spans(agent(200, 2, 150.0), window=1))
    drift.flush()
    (row,) = results(store, "claude")
    assert row["is_drifted"]
    skipped = {s["feature"] for s in json.loads(row["details"])["skipped"]}
    assert {"finish_reason", "refusal"} <= skipped  # constant: 'unknown' and 'answered'


def test_finish_reasons_and_texts_are_read_from_their_encodings() -> None:
    assert first_reason('["stop"]') == "stop"
    assert first_reason('["length", "stop"]') == "length"
    assert first_reason("end_turn") == "end_turn"
    assert first_reason("[]") is None and first_reason("[") is None and first_reason("") is None
    assert output_text(None) == ("", None)
    assert output_text("plain answer") == ("plain answer", None)
    messages = [{"role": "assistant", "parts": [{"type": "text", "content": REFUSAL}]}]
    assert output_text(json.dumps([{**messages[0], "finish_reason": "stop"}])) == (
        REFUSAL,
        "stop",
    )
    openai = {"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}]}
    assert output_text(json.dumps(openai)) == ("hi", "length")
    whole = json.dumps(messages)
    cut = whole[:80]  # a preview cut inside the text
    assert output_text(cut) == (REFUSAL[: 80 - whole.index(REFUSAL)], None)
    assert output_text("[1, 2]") == ("[1, 2]", None)  # JSON without text is the text
