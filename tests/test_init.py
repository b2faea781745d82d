"""``pyflare.init()`` end to end: local store, OTLP endpoint, joining an app's provider,
sampling, and bad environments that must never crash the host.

Each test runs its scenario in a child interpreter (``run_python``): ``init()``
installs the process's one global TracerProvider.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

import pyflare

EMAIL = "jane.doe@example.com"


def stored(path: Path) -> pd.DataFrame:
    """Every span in the store file, oldest first (the child has exited)."""
    return pyflare.sql(
        "SELECT * FROM traces ORDER BY start_time, span_id", store=f"duckdb:///{path}"
    )


def by_name(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    rows: list[dict[str, Any]] = frame.to_dict("records")
    names = [row["operation_name"] for row in rows]
    assert len(set(names)) == len(names), f"span names are not unique: {names}"
    return {row["operation_name"]: row for row in rows}


# -- local mode ----------------------------------------------------------------


def test_local_mode_stores_nested_sync_and_async_spans(run_python, tmp_path: Path) -> None:
    child = run_python(
        f"""
        import asyncio, json
        import pyflare

        provider = pyflare.init(
            service_name="shop",
            store="duckdb:///local.duckdb",
            pii=pyflare.PIIConfig(field_actions={{"app.note": "redact"}}),
        )

        @pyflare.trace(kind="llm", model_id="gpt-4o-mini")
        def ask(question: str) -> str:
            pyflare.record_usage(input_tokens=12, output_tokens=5)
            return "an answer"

        @pyflare.trace(kind="chain")
        async def handle(question: str) -> str:
            with pyflare.span("lookup", attributes={{"app.note": "call {EMAIL} back"}}):
                await asyncio.sleep(0)
            return ask(question)

        @pyflare.trace
        def root(question: str, email: str) -> str:
            return asyncio.run(handle(question))

        with pyflare.context(user_id="u-1", session_id="s-1"):
            root("where is my refund?", {EMAIL!r})
        flushed = pyflare.flush()
        seen = pyflare.traces()  # same process, before shutdown
        stats = pyflare.stats()
        pyflare.shutdown()
        print("RESULT", json.dumps({{
            "provider": type(provider).__module__ + "." + type(provider).__name__,
            "flushed": flushed,
            "traces": len(seen),
            "span_count": int(seen["span_count"][0]),
            "stats": stats,
            "after_shutdown": pyflare.stats(),
        }}))
        """
    )
    result = run_python.result(child.stdout)
    assert result["provider"] == "opentelemetry.sdk.trace.TracerProvider"
    assert result["flushed"] is True
    assert (result["traces"], result["span_count"]) == (1, 4)
    stats = result["stats"]
    assert stats["active"] is True
    assert (stats["exported"], stats["dropped"], stats["queued"]) == (4, 0, 0)
    assert stats["store"] == "duckdb:///local.duckdb"
    assert stats["endpoint"] is None
    assert result["after_shutdown"] == {"active": False}
    assert child.stderr == ""

    spans = by_name(stored(tmp_path / "local.duckdb"))
    assert set(spans) == {"root", "handle", "lookup", "ask"}
    root, handle, lookup, ask = (spans[n] for n in ("root", "handle", "lookup", "ask"))
    assert {row["trace_id"] for row in spans.values()} == {root["trace_id"]}
    assert pd.isna(root["parent_span_id"])
    assert handle["parent_span_id"] == root["span_id"]
    assert lookup["parent_span_id"] == handle["span_id"]
    assert ask["parent_span_id"] == handle["span_id"]
    for row in spans.values():
        assert row["service_name"] == "shop"
        assert row["resource"]["service.name"] == "shop"
        assert row["attributes"]["user.id"] == "u-1"
        assert row["attributes"]["session.id"] == "s-1"
    # The email argument is masked in the stored preview; the rest is kept.
    assert "where is my refund?" in root["input_preview"]
    assert EMAIL not in root["input_preview"]
    assert "[EMAIL]" in root["input_preview"]
    assert ask["output_preview"] == "an answer"
    assert (ask["input_tokens"], ask["output_tokens"], ask["total_tokens"]) == (12, 5, 17)
    assert ask["model_id"] == "gpt-4o-mini"
    # A field action from init(pii=PIIConfig(...)) applies to that attribute.
    assert lookup["attributes"]["app.note"] == "call  back"
    assert pd.isna(root["input_tokens"])  # unknown, not 0


def test_default_store_is_under_the_working_directory(run_python, tmp_path: Path) -> None:
    run_python(
        """
        import pyflare
        pyflare.init()

        @pyflare.trace
        def work() -> int:
            return 1

        work()
        """,
        # No service name anywhere but in the resource attributes: that one counts.
        env={"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource,team=ml"},
    )
    # No explicit flush or shutdown: the atexit hook stores the span.
    path = tmp_path / ".pyflare" / "pyflare.duckdb"
    assert path.is_file()
    (row,) = stored(path).to_dict("records")
    assert row["operation_name"] == "work"
    assert row["service_name"] == "from-resource"
    assert row["resource"]["team"] == "ml"


# -- remote mode ---------------------------------------------------------------


@dataclass
class OTLPSink:
    """A loopback OTLP/HTTP receiver recording every export request."""

    port: int
    requests: list[tuple[str, dict[str, str], ExportTraceServiceRequest]] = field(
        default_factory=list
    )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Span name -> (resource attributes, span attributes), over every request."""
        found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for _, _, request in self.requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found[span.name] = (resource, _attributes(span.attributes))
        return found


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {pair.key: _value(pair.value) for pair in items}


@pytest.fixture
def otlp_sink() -> Iterator[OTLPSink]:
    sink = OTLPSink(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            sink.requests.append((self.path, headers, request))
            payload = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


REMOTE_CHILD = f"""
import json
import opentelemetry.trace
import pyflare

provider = pyflare.init(**INIT_KWARGS)

@pyflare.trace
def greet(email: str) -> str:
    return "hello"

greet({EMAIL!r})
with opentelemetry.trace.get_tracer("other-lib").start_as_current_span("chat") as span:
    span.set_attribute("gen_ai.input.messages", '[{{"role": "user", "content": "I am {EMAIL}"}}]')
flushed = pyflare.flush()
stats = pyflare.stats()
try:
    pyflare.traces()
    reading = "read"
except pyflare.StoreError as exc:
    reading = str(exc)
pyflare.shutdown()
print("RESULT", json.dumps({{"flushed": flushed, "stats": stats, "reading": reading}}))
"""


def test_remote_mode_sends_masked_otlp_with_headers(
    run_python, tmp_path: Path, otlp_sink: OTLPSink
) -> None:
    kwargs = {
        "service_name": "remote-svc",
        "endpoint": otlp_sink.endpoint,
        "headers": {"x-api-key": "k"},
    }
    child = run_python(REMOTE_CHILD.replace("**INIT_KWARGS", f"**{kwargs!r}"))
    result = run_python.result(child.stdout)
    assert result["flushed"] is True
    assert result["stats"]["endpoint"] == f"{otlp_sink.endpoint}/v1/traces"
    assert result["stats"]["store"] is None
    assert (result["stats"]["exported"], result["stats"]["dropped"]) == (2, 0)
    assert "no local store" in result["reading"]

    assert otlp_sink.requests
    for path, headers, _ in otlp_sink.requests:
        assert path == "/v1/traces"
        assert headers["x-api-key"] == "k"
        assert headers["content-type"] == "application/x-protobuf"
    spans = otlp_sink.spans()
    assert set(spans) == {"greet", "chat"}
    resource, greet = spans["greet"]
    assert resource["service.name"] == "remote-svc"
    assert EMAIL not in greet["pyflare.input.preview"]
    assert "[EMAIL]" in greet["pyflare.input.preview"]
    _, chat = spans["chat"]
    assert EMAIL not in chat["gen_ai.input.messages"]
    assert "[EMAIL]" in chat["gen_ai.input.messages"]
    # Only an endpoint: nothing is written locally.
    assert list(tmp_path.iterdir()) == []


def test_remote_mode_from_otel_env_and_a_store_too(
    run_python, tmp_path: Path, otlp_sink: OTLPSink
) -> None:
    child = run_python(
        REMOTE_CHILD.replace("**INIT_KWARGS", "store='duckdb:///both.duckdb'"),
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=env%20key",
            "OTEL_SERVICE_NAME": "env-svc",
        },
    )
    result = run_python.result(child.stdout)
    assert result["stats"]["endpoint"] == f"{otlp_sink.endpoint}/v1/traces"
    assert result["stats"]["store"] == "duckdb:///both.duckdb"
    assert result["reading"] == "read"
    assert {headers["x-api-key"] for _, headers, _ in otlp_sink.requests} == {"env key"}
    sent = otlp_sink.spans()
    assert set(sent) == {"greet", "chat"}
    assert sent["greet"][0]["service.name"] == "env-svc"
    assert EMAIL not in sent["chat"][1]["gen_ai.input.messages"]

    spans = by_name(stored(tmp_path / "both.duckdb"))
    assert set(spans) == {"greet", "chat"}
    assert spans["greet"]["service_name"] == "env-svc"
    assert EMAIL not in spans["chat"]["attributes"]["gen_ai.input.messages"]


# -- joining the application's provider -----------------------------------------

JOIN_CHILD = f"""
import json
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import pyflare

app_exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({{"service.name": "app-svc"}}))
provider.add_span_processor(SimpleSpanProcessor(app_exporter))
GLOBAL = GLOBAL_FLAG
if GLOBAL:
    trace.set_tracer_provider(provider)
    returned = pyflare.init(store="duckdb:///joined.duckdb")
    other = trace.get_tracer("other-lib")
else:
    returned = pyflare.init(store="duckdb:///joined.duckdb", tracer_provider=provider)
    other = provider.get_tracer("other-lib")

@pyflare.trace
def step(x: int) -> int:
    with other.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as span:
        span.set_attributes({{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 21,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.input.messages": '[{{"role": "user", "content": "I am {EMAIL}"}}]',
        }})
    return x

step(1)
pyflare.flush()
stats = pyflare.stats()
pyflare.shutdown()
app_spans = {{s.name: dict(s.attributes or {{}}) for s in app_exporter.get_finished_spans()}}
print("RESULT", json.dumps({{
    "same_provider": returned is provider,
    "global_is_app": trace.get_tracer_provider() is provider,
    "app_spans": sorted(app_spans),
    "app_saw_content": app_spans.get("chat gpt-4o", {{}}).get("gen_ai.input.messages"),
    "stats": stats,
}}))
"""


@pytest.mark.parametrize("global_provider", [True, False], ids=["global", "explicit"])
def test_joins_the_applications_provider(run_python, tmp_path: Path, global_provider: bool) -> None:
    child = run_python(JOIN_CHILD.replace("GLOBAL_FLAG", repr(global_provider)))
    result = run_python.result(child.stdout)
    assert result["same_provider"] is True
    assert result["global_is_app"] is global_provider
    assert result["stats"]["exported"] == 2
    # The application's own exporter still gets everything, as its pipeline made it.
    assert result["app_spans"] == ["chat gpt-4o", "step"]
    assert EMAIL in result["app_saw_content"]

    spans = by_name(stored(tmp_path / "joined.duckdb"))
    assert set(spans) == {"step", "chat gpt-4o"}
    chat, step = spans["chat gpt-4o"], spans["step"]
    assert chat["parent_span_id"] == step["span_id"]
    assert {chat["service_name"], step["service_name"]} == {"app-svc"}
    assert chat["model_id"] == "gpt-4o"
    assert chat["inference_type"] == "llm"
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (21, 7, 28)
    assert chat["span_kind"] == "client"
    messages = chat["attributes"]["gen_ai.input.messages"]
    assert EMAIL not in messages
    assert "[EMAIL]" in messages
    assert EMAIL not in chat["input_preview"]


# -- sampling and resource ------------------------------------------------------

SAMPLED_CHILD = """
import json
import pyflare

pyflare.init(store="duckdb:///sampled.duckdb")

@pyflare.trace
def work(i: int) -> int:
    return i

for i in range(200):
    work(i)
pyflare.flush()
stats = pyflare.stats()
pyflare.shutdown()
print("RESULT", json.dumps(stats))
"""


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
        {"OTEL_TRACES_SAMPLER": "always_off"},
        {"PYFLARE_SAMPLE_RATE": "0", "OTEL_TRACES_SAMPLER": "always_on"},
    ],
    ids=["traceidratio-0", "always_off", "pyflare-over-otel"],
)
def test_sampler_from_environment_keeps_nothing(
    run_python, tmp_path: Path, env: dict[str, str]
) -> None:
    child = run_python(SAMPLED_CHILD, env=env)
    stats = run_python.result(child.stdout)
    assert (stats["exported"], stats["dropped"]) == (0, 0)
    assert len(stored(tmp_path / "sampled.duckdb")) == 0


def test_sample_rate_argument_and_otel_resource(run_python, tmp_path: Path) -> None:
    child = run_python(
        """
        import json
        import pyflare

        @pyflare.trace
        def work(i: int) -> int:
            return i

        exported = {}
        for rate, count in ((0.0, 100), (1.0, 100), (0.5, 2000)):
            pyflare.init(store="duckdb:///rates.duckdb", sample_rate=rate)
            for i in range(count):
                work(i)
            pyflare.flush()
            exported[rate] = pyflare.stats()["exported"]
        pyflare.shutdown()
        print("RESULT", json.dumps(exported))
        """,
        env={
            "OTEL_SERVICE_NAME": "from-otel",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,team=ml,region=eu%2Dwest",
        },
    )
    exported = run_python.result(child.stdout)
    assert exported["0.0"] == 0
    assert exported["1.0"] == 100
    assert 800 <= exported["0.5"] <= 1200  # binomial(2000, 0.5): sd ≈ 22
    # Re-initialising keeps the provider, so no "service name" warning either.
    assert child.stderr == ""
    rows = stored(tmp_path / "rates.duckdb")
    assert len(rows) == 100 + exported["0.5"]
    resource = rows["resource"][0]
    assert resource["service.name"] == "from-otel"
    assert (resource["team"], resource["region"]) == ("ml", "eu-west")
    assert set(rows["service_name"]) == {"from-otel"}


# -- the host never crashes -------------------------------------------------------

WORK_CHILD_HEADER = """
import json, os, sys, time
import pyflare

@pyflare.trace
def work(phase: str) -> str:
    return phase
"""


def test_unwritable_store_directory_warns_once_and_counts_drops(run_python) -> None:
    child = run_python(
        WORK_CHILD_HEADER
        + """
open("blocker", "w").write("a file where a directory should be")
pyflare.init(store="duckdb:///blocker/sub/x.duckdb", export_interval_ms=20)
for i in range(30):
    work("dropped")
    if i % 10 == 0:
        pyflare.flush()
pyflare.flush()
stats = pyflare.stats()
pyflare.shutdown()
print("RESULT", json.dumps(stats))
print("host still running")
"""
    )
    stats = run_python.result(child.stdout)
    assert child.stdout.rstrip().endswith("host still running")
    assert (stats["exported"], stats["dropped"], stats["dropped_export_failed"]) == (0, 30, 30)
    assert "blocker" in stats["store_error"]
    (warning,) = child.stderr.strip().splitlines()
    assert "PyFlare cannot store spans" in warning
    assert "cannot create the store directory" in warning
    assert "blocker" in warning


def _wait_for(path: Path, proc: Any, timeout: float = 30) -> str:
    """The text of ``path`` once ``proc`` has written it (atomically, by a rename)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited {proc.returncode} early\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {path.name}")
        time.sleep(0.05)
    return path.read_text()


def test_store_locked_by_another_process(run_python, tmp_path: Path) -> None:
    holder = run_python.start(
        """
        import os, sys
        from pyflare.store.duckdb import DuckDBSpanStore

        store = DuckDBSpanStore("locked.duckdb")
        with open("holder.tmp", "w") as ready:
            ready.write(str(os.getpid()))
        os.rename("holder.tmp", "holder.ready")
        sys.stdin.readline()
        store.close()
        """
    )
    app = None
    try:
        holder_pid = int(_wait_for(tmp_path / "holder.ready", holder))
        app = run_python.start(
            WORK_CHILD_HEADER
            + """
import pyflare.exporters.duckdb
pyflare.exporters.duckdb.RETRY_OPEN_SECONDS = 0.2  # the default is a few seconds

pyflare.init(store="duckdb:///locked.duckdb", export_interval_ms=20)
for _ in range(10):
    work("while-locked")
pyflare.flush()
with open("app.locked.tmp", "w") as out:
    json.dump(pyflare.stats(), out)
os.rename("app.locked.tmp", "app.locked")
sys.stdin.readline()  # the holder has gone
deadline = time.monotonic() + 30
while time.monotonic() < deadline and pyflare.stats()["exported"] == 0:
    work("after-release")
    pyflare.flush()
    time.sleep(0.05)
stats = pyflare.stats()
pyflare.shutdown()
print("RESULT", json.dumps(stats))
"""
        )
        while_locked = json.loads(_wait_for(tmp_path / "app.locked", app))
        assert (while_locked["exported"], while_locked["dropped"]) == (0, 10)
        assert f"PID {holder_pid}" in while_locked["store_error"]

        reader = run_python(
            """
            import json
            import pyflare
            try:
                pyflare.traces(store="duckdb:///locked.duckdb")
                print("RESULT", json.dumps("read"))
            except pyflare.StoreLockedError as exc:
                print("RESULT", json.dumps(str(exc)))
            """
        )
        message = run_python.result(reader.stdout)
        assert "locked.duckdb" in message
        assert f"PID {holder_pid}" in message

        holder.communicate("\n", timeout=30)
        assert holder.returncode == 0
        out, err = app.communicate("\n", timeout=60)
    finally:
        for proc in (holder, app):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert app.returncode == 0, err
    stats = run_python.result(out)
    assert stats["exported"] > 0
    assert stats["dropped"] >= 10
    # One warning, naming the file and the process holding it.
    (warning,) = err.strip().splitlines()
    assert "locked.duckdb" in warning
    assert f"PID {holder_pid}" in warning

    phases = stored(tmp_path / "locked.duckdb")["input_preview"].tolist()
    assert phases
    assert all("after-release" in phase for phase in phases)


def test_full_disk_drops_and_warns_once(run_python) -> None:
    child = run_python(
        WORK_CHILD_HEADER
        + """
import resource, signal

pyflare.init(store="duckdb:///full.duckdb", export_interval_ms=20, export_batch_size=50)
work("fits")
pyflare.flush()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
# Writes go to the write-ahead log: it can't grow any more.
wal = "full.duckdb.wal" if os.path.exists("full.duckdb.wal") else "full.duckdb"
limit = os.path.getsize(wal)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
for _ in range(20):
    for _ in range(100):
        work("x" * 200)
    pyflare.flush()
stats = pyflare.stats()
pyflare.shutdown()
print("RESULT", json.dumps(stats))
print("host still running")
"""
    )
    stats = run_python.result(child.stdout)
    assert child.stdout.rstrip().endswith("host still running")
    assert stats["exported"] + stats["dropped"] == 2001
    assert stats["dropped"] == stats["dropped_export_failed"] >= 1000
    assert "full.duckdb" in stats["store_error"]
    assert child.stderr.count("PyFlare could not store spans") == 1, child.stderr


def test_forked_child_never_writes_to_the_parents_store(run_python, tmp_path: Path) -> None:
    completed = run_python(
        """
        import json, os
        import pyflare

        pyflare.init(service_name="parent", store="duckdb:///fork.duckdb")

        @pyflare.trace
        def work(who: str) -> str:
            return who

        work("before-fork")
        pyflare.flush()
        pid = os.fork()
        if pid == 0:
            work("child")
            pyflare.flush()
            stats = pyflare.stats()
            # The child can't own the parent's file: its spans are dropped and counted.
            ok = stats["dropped"] >= 1 and "was forked from PID" in stats.get("store_error", "")
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        work("after-fork")
        pyflare.flush()
        names = sorted(pyflare.sql("SELECT input_preview FROM traces").input_preview)
        print("RESULT", json.dumps({"child_status": os.waitstatus_to_exitcode(status), "rows": names}))
        pyflare.shutdown()
        """
    )
    result = run_python.result(completed.stdout)
    assert result["child_status"] == 0, completed.stderr
    assert result["rows"] == ['{"who":"after-fork"}', '{"who":"before-fork"}']
    # The parent's file is intact and holds only the parent's spans.
    from pyflare.store.duckdb import DuckDBSpanStore

    with DuckDBSpanStore(tmp_path / "fork.duckdb", read_only=True) as store:
        rows = store.sql("SELECT input_preview FROM traces ORDER BY 1").column(0).to_pylist()
    assert rows == ['{"who":"after-fork"}', '{"who":"before-fork"}']


def test_unreachable_endpoint_drops_counts_and_the_host_goes_on(run_python) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    completed = run_python(
        f"""
        import json, time
        import pyflare

        pyflare.init(service_name="svc", endpoint="http://127.0.0.1:{port}",
                     export_timeout_ms=1500)

        @pyflare.trace
        def work(i: int) -> int:
            return i * 2

        assert [work(i) for i in range(50)][-1] == 98
        started = time.monotonic()
        flushed = pyflare.flush(timeout_millis=5000)
        stats = pyflare.stats()
        pyflare.shutdown()
        print("RESULT", json.dumps({{"stats": stats, "waited": time.monotonic() - started}}))
        print("host still running")
        """
    )
    result = run_python.result(completed.stdout)
    assert "host still running" in completed.stdout
    assert result["stats"]["dropped_export_failed"] == 50
    assert result["stats"]["exported"] == 0
    # flush() gives up at its timeout rather than hanging the host (a liveness
    # bound, far above the 5 s asked for, not a speed check).
    assert result["waited"] < 30
