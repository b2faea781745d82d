"""The real app on a DuckDB file for the SQL endpoint's and the live stream's tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from starlette.testclient import TestClient

from _readable_spans import MS
from _readable_spans import make_span as readable_span
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app
from pyflare_server.settings import ServerSettings

PROTOBUF = {"Content-Type": "application/x-protobuf"}
LLM = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}


@contextmanager
def app_client(
    tmp_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[tuple[TestClient, DuckDBSpanStore]]:
    """The whole app (loopback, so no auth) on a store of its own, started and drained."""
    settings = ServerSettings.load(
        env={"PYFLARE_COLLECTOR__OTLP__DECODE_WORKERS": "0", **(env or {})},
        overrides={"host": "127.0.0.1"},
    )
    store = DuckDBSpanStore(tmp_path / "stream.duckdb")
    try:
        with TestClient(create_app(settings, store=store)) as client:
            yield client, store
    finally:
        store.close()


def agent_trace(
    trace: int,
    *,
    model: str | None = "gpt-4o-mini",
    root_model: str | None = None,
    failed: bool = False,
    service: str = "agent",
    start: int = 0,
) -> list[ReadableSpan]:
    """A root (``root_model`` or none) and one LLM child calling ``model`` (or a tool)."""
    now = start or 1_767_225_600_000_000_000
    child_attributes = {**LLM, "gen_ai.request.model": model} if model else {"tool": "search"}
    root_attributes = {**LLM, "gen_ai.request.model": root_model} if root_model else {}
    return [
        readable_span(
            trace, 2, parent=1, name="call", start=now + MS, duration=3 * MS, service=service,
            attributes=child_attributes,
            status=StatusCode.ERROR if failed else StatusCode.UNSET,
        ),
        readable_span(
            trace, 1, name="answer", start=now, duration=10 * MS, service=service,
            attributes=root_attributes,
        ),
    ]  # fmt: skip


def post_spans(client: TestClient, spans: Sequence[ReadableSpan]) -> None:
    """Send ``spans`` as one OTLP/HTTP protobuf request; it returns once they are stored."""
    response = client.post(
        "/v1/traces", content=encode_spans(spans).SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200, response.text
