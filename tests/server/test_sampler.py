"""The sampler: rules by service and attribute, decided on the trace id, whole traces."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from span_rows import span_rows, tid

from pyflare_server.pipeline.sampler import Sampler, low64, trace_kept
from pyflare_server.settings import SamplingSettings

HALF = 1 << 63


def sampler(default_rate: float = 1.0, rules: list[dict[str, Any]] | None = None) -> Sampler:
    return Sampler(SamplingSettings(default_rate=default_rate, rules=rules or []))


def random_ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def kept_ids(batch: pa.Table) -> set[str]:
    return set(batch.column("trace_id").to_pylist())


def test_the_default_keeps_everything_untouched() -> None:
    batch = span_rows(50)
    kept, dropped = Sampler().sample(batch)
    assert kept is batch
    assert dropped == 0


def test_rate_zero_drops_everything() -> None:
    kept, dropped = sampler(0.0).sample(span_rows(30))
    assert (kept.num_rows, dropped) == (0, 30)
    assert kept.schema == span_rows(1).schema


def test_an_empty_batch() -> None:
    kept, dropped = sampler(0.5).sample(span_rows(0))
    assert (kept.num_rows, dropped) == (0, 0)


def test_the_threshold_is_on_the_lower_64_bits_of_the_trace_id() -> None:
    ids = [tid(0), tid(HALF - 1), tid(HALF), tid((1 << 64) - 1), "f" * 16 + "0" * 16]
    batch = span_rows(len(ids), trace_ids=ids)
    kept, dropped = sampler(0.5).sample(batch)
    # The high 64 bits play no part: ffff…0000 has lower bits 0.
    assert kept.column("trace_id").to_pylist() == [tid(0), tid(HALF - 1), "f" * 16 + "0" * 16]
    assert dropped == 2
    assert [trace_kept(i, 0.5) for i in ids] == [True, True, False, False, True]


def test_a_fraction_of_traces_is_kept_and_each_is_kept_whole() -> None:
    ids = random_ids(4000)
    batch = span_rows(len(ids) * 5, trace_ids=[i for i in ids for _ in range(5)])
    kept, dropped = sampler(0.25).sample(batch)
    per_trace = pc.value_counts(kept.column("trace_id")).field("counts").to_pylist()
    assert set(per_trace) == {5}  # no trace is split
    assert kept.num_rows + dropped == batch.num_rows
    assert 0.22 < len(per_trace) / len(ids) < 0.28


def test_the_decision_is_the_same_in_every_batch() -> None:
    ids = random_ids(500, seed=1)
    s = sampler(0.3)
    first, _ = s.sample(span_rows(500, trace_ids=ids))
    shuffled = ids[::-1]
    halves = [
        s.sample(span_rows(250, trace_ids=shuffled[:250]))[0],
        s.sample(span_rows(250, trace_ids=shuffled[250:]))[0],
    ]
    assert kept_ids(first) == kept_ids(halves[0]) | kept_ids(halves[1])
    assert kept_ids(first) == {i for i in ids if trace_kept(i, 0.3)}


def test_a_trace_kept_at_a_rate_is_kept_at_every_higher_rate() -> None:
    ids = random_ids(1000, seed=2)
    batch = span_rows(1000, trace_ids=ids)
    kept = [kept_ids(sampler(rate).sample(batch)[0]) for rate in (0.1, 0.2, 0.5, 0.9)]
    assert kept[0] <= kept[1] <= kept[2] <= kept[3]


def test_a_service_rule() -> None:
    ids = random_ids(200, seed=3)
    services = ["noisy" if i % 2 else "quiet" for i in range(200)]
    batch = span_rows(200, trace_ids=ids, service=services)
    kept, dropped = sampler(1.0, [{"service": "noisy", "rate": 0.0}]).sample(batch)
    assert set(kept.column("service_name").to_pylist()) == {"quiet"}
    assert dropped == 100


def test_an_attribute_rule_keeps_priority_high_whatever_the_default() -> None:
    attributes = [{"priority": "high"} if i % 4 == 0 else {"priority": "low"} for i in range(40)]
    batch = span_rows(40, trace_ids=random_ids(40, seed=4), attributes=attributes)
    settings = SamplingSettings(default_rate=0.0)  # keeps the default priority=high rule
    kept, dropped = Sampler(settings).sample(batch)
    assert kept.num_rows == 10
    assert dropped == 30
    assert all(a == [("priority", "high")] for a in kept.column("attributes").to_pylist())


def test_a_span_takes_the_highest_rate_of_the_rules_it_matches() -> None:
    # The spec's example: a high-volume service at 10%, priority=high always kept.
    rules = [
        {"service": "high-volume-service", "rate": 0.0},
        {"attribute": {"key": "priority", "value": "high"}, "rate": 1.0},
    ]
    batch = span_rows(
        3,
        trace_ids=random_ids(3, seed=5),
        service="high-volume-service",
        attributes=[{"priority": "high"}, {}, {"priority": "normal"}],
    )
    kept, dropped = sampler(1.0, rules).sample(batch)
    assert kept.column("trace_id").to_pylist() == batch.column("trace_id").to_pylist()[:1]
    assert dropped == 2


def test_a_trace_takes_the_highest_rate_of_its_spans() -> None:
    # One span of the trace is priority=high: the whole trace is kept.
    ids = [tid((1 << 64) - 1)] * 4 + [tid((1 << 64) - 2)] * 3
    attributes = [{}, {}, {"priority": "high"}, {}, {}, {}, {}]
    batch = span_rows(7, trace_ids=ids, attributes=attributes)
    kept, dropped = sampler(
        0.0, [{"attribute": {"key": "priority", "value": "high"}, "rate": 1}]
    ).sample(batch)
    assert kept.column("trace_id").to_pylist() == ids[:4]
    assert dropped == 3


def test_a_rule_with_service_and_attribute_needs_both() -> None:
    rules = [{"service": "api", "attribute": {"key": "debug", "value": True}, "rate": 0.0}]
    batch = span_rows(
        4,
        trace_ids=random_ids(4, seed=6),
        service=["api", "api", "web", "web"],
        attributes=[{"debug": "true"}, {}, {"debug": "true"}, {}],
    )
    kept, dropped = sampler(1.0, rules).sample(batch)
    assert dropped == 1
    assert kept.column("trace_id").to_pylist() == batch.column("trace_id").to_pylist()[1:]


def test_span_rates() -> None:
    rules = [
        {"service": "a", "rate": 0.2},
        {"attribute": {"key": "k", "value": "v"}, "rate": 0.6},
        {"service": "a", "rate": 0.4},
    ]
    batch = span_rows(4, service=["a", "a", "b", "b"], attributes=[{}, {"k": "v"}, {"k": "v"}, {}])
    assert sampler(0.9, rules).span_rates(batch).tolist() == [0.4, 0.6, 0.6, 0.9]


def test_low64_matches_the_scalar_rule() -> None:
    ids = random_ids(1000, seed=7)
    array = pa.array(ids)
    expected = [int(i[16:], 16) for i in ids]
    assert low64(array).tolist() == expected
    assert low64(array.slice(10, 20)).tolist() == expected[10:30]
    chunked = pa.chunked_array([array.slice(0, 300), array.slice(300)])
    assert low64(chunked).tolist() == expected
    assert low64(pa.array(ids[:5], pa.large_string())).tolist() == expected[:5]
    assert low64(pa.array(["ABCDEF" + "0" * 26])).tolist() == [0]
    assert low64(pa.array([], pa.string())).tolist() == []


@pytest.mark.parametrize(
    ("trace_id", "value"),
    [("abc", 0xABC), ("", 0), (None, 0), ("zz" * 16, 0), ("F" * 32, (1 << 64) - 1)],
)
def test_low64_of_odd_ids(trace_id: str | None, value: int) -> None:
    assert low64(pa.array([trace_id, "0" * 32], pa.string())).tolist() == [value, 0]


def test_odd_ids_are_sampled_not_crashed_on() -> None:
    batch = span_rows(3, trace_ids=["short", "not-hex-" * 4, "1" * 40])
    kept, dropped = sampler(0.5).sample(batch)
    assert kept.num_rows + dropped == 3


def test_rates_at_the_edges() -> None:
    assert trace_kept(tid((1 << 64) - 1), 1.0)
    assert not trace_kept(tid(0), 0.0)
    assert trace_kept(tid(0), 1e-300)
    assert not trace_kept(tid(1), 1e-300)
