"""The enricher: collector host, environment and version in every row's resource."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from span_rows import log_rows, metric_rows, span_rows

from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from pyflare.store.batches import shared_resource
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline.enricher import COLLECTOR_HOST, Enricher
from pyflare_server.settings import EnricherSettings

FULL = EnricherSettings(host="collector-1", environment="prod", version="2.0")
ENV_KEYS = ("deployment.environment.name", "deployment.environment")


def expected(resource: list[tuple[str, str]], settings: EnricherSettings) -> list[tuple[str, str]]:
    """What the module docstring says, one row at a time."""
    row = [(k, v) for k, v in resource if k != COLLECTOR_HOST]
    row.append((COLLECTOR_HOST, settings.host))
    if settings.environment is not None and not any(k in ENV_KEYS for k, _ in row):
        row.append(("deployment.environment.name", settings.environment))
    if settings.version is not None and not any(k == "service.version" for k, _ in row):
        row.append(("service.version", settings.version))
    return row


def resources(batch: pa.Table) -> list[list[tuple[str, str]]]:
    return batch.column("resource").to_pylist()


def test_every_row_gets_the_host_and_what_it_lacks() -> None:
    batch = span_rows(
        5,
        resource=[
            {"service.name": "a"},
            {"service.name": "a", "deployment.environment": "dev", COLLECTOR_HOST: "upstream"},
            {},
            {"service.version": "9", "deployment.environment.name": "staging"},
            {"service.name": "b"},
        ],
    )
    out = Enricher(FULL).enrich("traces", batch)
    assert resources(out) == [
        [
            ("service.name", "a"),
            (COLLECTOR_HOST, "collector-1"),
            ("deployment.environment.name", "prod"),
            ("service.version", "2.0"),
        ],
        [
            ("service.name", "a"),
            ("deployment.environment", "dev"),
            (COLLECTOR_HOST, "collector-1"),
            ("service.version", "2.0"),
        ],
        [
            (COLLECTOR_HOST, "collector-1"),
            ("deployment.environment.name", "prod"),
            ("service.version", "2.0"),
        ],
        [
            ("service.version", "9"),
            ("deployment.environment.name", "staging"),
            (COLLECTOR_HOST, "collector-1"),
        ],
        [
            ("service.name", "b"),
            (COLLECTOR_HOST, "collector-1"),
            ("deployment.environment.name", "prod"),
            ("service.version", "2.0"),
        ],
    ]
    assert out.schema == SPAN_SCHEMA
    assert out.drop_columns(["resource"]).equals(batch.drop_columns(["resource"]))


def test_only_the_host_by_default() -> None:
    out = Enricher(EnricherSettings(host="h")).enrich("traces", span_rows(2))
    assert resources(out) == [[("service.name", "svc"), (COLLECTOR_HOST, "h")]] * 2


def test_a_shared_resource_stays_shared() -> None:
    resource = {"service.name": "s", "host.name": "box", "telemetry.sdk.language": "python"}
    out = Enricher(FULL).enrich("traces", span_rows(100, resource=resource))
    shared = shared_resource(out.column("resource"))
    assert shared is not None
    assert list(zip(*shared, strict=True)) == expected(list(resource.items()), FULL)


def test_sliced_and_chunked_batches() -> None:
    batch = span_rows(10, resource=[{"i": str(i)} for i in range(10)])
    enricher = Enricher(FULL)
    sliced = batch.slice(3, 4)
    assert resources(enricher.enrich("traces", sliced)) == [
        expected(r, FULL) for r in resources(sliced)
    ]
    chunked = pa.concat_tables([batch.slice(0, 5), batch.slice(5)])
    assert resources(enricher.enrich("traces", chunked)) == [
        expected(r, FULL) for r in resources(batch)
    ]
    same = span_rows(10)
    shared_sliced = pa.concat_tables([same.slice(2, 3), same.slice(7, 2)])
    assert (
        resources(enricher.enrich("traces", shared_sliced))
        == [expected([("service.name", "svc")], FULL)] * 5
    )


@pytest.mark.parametrize(
    ("signal", "batch", "schema"),
    [("metrics", metric_rows(3), METRIC_SCHEMA), ("logs", log_rows(2), LOG_SCHEMA)],
)
def test_metrics_and_logs_too(signal: str, batch: pa.Table, schema: pa.Schema) -> None:
    out = Enricher(FULL).enrich(signal, batch)
    assert out.schema == schema
    assert resources(out) == [expected([("service.name", "svc")], FULL)] * batch.num_rows


def test_a_table_without_a_resource_or_rows_is_left_alone() -> None:
    table = pa.table({"x": [1, 2]})
    assert Enricher(FULL).enrich("traces", table) is table
    empty = span_rows(0)
    assert Enricher(FULL).enrich("traces", empty) is empty


def test_the_store_takes_what_the_enricher_makes() -> None:
    batch = span_rows(20, resource=[{"n": str(i % 3)} for i in range(20)])
    with DuckDBSpanStore(":memory:") as store:
        assert store.write(Enricher(FULL).enrich("traces", batch)) == 20
        rows = store.sql(
            f"SELECT DISTINCT resource['{COLLECTOR_HOST}'] AS host FROM traces"
        ).to_pylist()
    assert rows == [{"host": "collector-1"}]


keys = st.sampled_from(
    ["service.name", "service.version", "deployment.environment", "deployment.environment.name",
     COLLECTOR_HOST, "k", "ü"]
)  # fmt: skip
rows = st.lists(st.tuples(keys, st.text(max_size=5)), max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    table=st.one_of(
        st.lists(rows, min_size=1, max_size=8),
        st.builds(lambda row, n: [row] * n, rows, st.integers(1, 8)),  # shared resource
    ),
    environment=st.one_of(st.none(), st.just("prod")),
    version=st.one_of(st.none(), st.just("1.0")),
)
def test_matches_the_row_by_row_rule(
    table: list[list[tuple[str, str]]], environment: str | None, version: str | None
) -> None:
    settings_ = EnricherSettings(host="h", environment=environment, version=version)
    batch = span_rows(len(table), resource=[dict(r) for r in table])
    out = Enricher(settings_).enrich("traces", batch)
    assert resources(out) == [expected(r, settings_) for r in resources(batch)]
    assert out.schema == SPAN_SCHEMA
