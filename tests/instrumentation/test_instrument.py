"""instrument()/uninstrument(): by name, idempotent, complete, and safe on bad input."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

import openai
import pytest
import wrapt
from _openai_server import OpenAIServer

from pyflare.errors import InvalidArgumentError
from pyflare.instrumentation import SUPPORTED, instrument, instrumented, uninstrument
from pyflare.instrumentation.openai import OpenAIInstrumentor
from pyflare.testing import CapturedSpans

TARGETS = [
    ("openai.resources.chat.completions", "Completions"),
    ("openai.resources.chat.completions", "AsyncCompletions"),
    ("openai.resources.responses", "Responses"),
    ("openai.resources.responses", "AsyncResponses"),
    ("openai.resources.embeddings", "Embeddings"),
    ("openai.resources.embeddings", "AsyncEmbeddings"),
]
MESSAGES = [{"role": "user", "content": "hi"}]


def originals() -> list[object]:
    return [getattr(import_module(m), c).__dict__["create"] for m, c in TARGETS]


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    uninstrument()
    yield
    uninstrument()


def chat(server: OpenAIServer) -> None:
    with openai.OpenAI(api_key="k", base_url=server.base_url) as oai:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_instrumenting_twice_patches_once(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    assert instrument("openai") == ["openai"]
    assert instrument(["openai", "OpenAI"]) == ["openai"]
    assert instrumented() == ["openai"]
    chat(openai_server)
    assert len(pyflare_capture.spans) == 1


def test_uninstrument_restores_the_very_same_functions(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    before = originals()
    instrument("openai")
    assert all(isinstance(f, wrapt.FunctionWrapper) for f in originals())
    assert uninstrument("openai") == ["openai"]
    after = originals()
    assert all(a is b for a, b in zip(after, before, strict=True))
    chat(openai_server)
    assert pyflare_capture.spans == []


def test_uninstrument_without_instrument_does_nothing() -> None:
    before = originals()
    assert uninstrument("openai") == []
    assert uninstrument() == []
    assert all(a is b for a, b in zip(originals(), before, strict=True))


def test_auto_instruments_what_is_importable() -> None:
    done = instrument("auto")
    assert "openai" in done
    assert set(done) <= set(SUPPORTED)
    assert sorted(uninstrument()) == sorted(done)
    assert instrumented() == []


@pytest.mark.parametrize(
    ("libraries", "message"),
    [
        ("torch", "unknown library 'torch'.*instrument_torch"),
        (["openai", "requests"], "unknown library 'requests'"),
        ([], "takes a library name"),
        (42, "takes a library name"),
        ([None], "unknown library None"),
    ],
)
def test_bad_names_are_rejected_naming_them(libraries: object, message: str) -> None:
    before = originals()
    with pytest.raises(InvalidArgumentError, match=message):
        instrument(libraries)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=message):
        uninstrument(libraries)  # type: ignore[arg-type]
    assert all(a is b for a, b in zip(originals(), before, strict=True))


def test_an_option_no_instrumentor_takes_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="stream_usage"):
        instrument("openai", stream_usage=True)
    assert instrumented() == []
    with pytest.raises(InvalidArgumentError, match="unknown option"):
        OpenAIInstrumentor().instrument(colour="blue")
    assert instrumented() == []


def test_a_version_outside_the_range_is_not_patched(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(OpenAIInstrumentor, "supported", ">=99")
    before = originals()
    with caplog.at_level(logging.ERROR, logger="pyflare.instrumentation"):
        assert instrument("openai") == []
    assert f"openai >=99, but openai {openai.__version__} is installed" in caplog.text
    assert "nothing was patched" in caplog.text
    assert all(a is b for a, b in zip(originals(), before, strict=True))
    assert instrumented() == []


def test_the_opentelemetry_way_works_too(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    instrumentor = OpenAIInstrumentor()
    assert instrumentor is OpenAIInstrumentor()  # one per process, as OTel's are
    instrumentor.instrument()
    assert instrumented() == ["openai"]
    chat(openai_server)
    instrumentor.uninstrument()
    chat(openai_server)
    assert len(pyflare_capture.spans) == 1


def test_a_wrapper_added_on_top_survives_uninstrument(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    from openai.resources.chat.completions import Completions

    original = Completions.__dict__["create"]
    instrument("openai")
    calls: list[str] = []

    def outer(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        calls.append("outer")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(Completions, "create", outer)
    try:
        uninstrument("openai")
        chat(openai_server)
        assert calls == ["outer"]  # the other wrapper still runs
        assert pyflare_capture.spans == []  # PyFlare's, inside it, passes calls through
    finally:
        Completions.create = original  # type: ignore[method-assign]


def test_the_entry_points_name_real_instrumentors() -> None:
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    group = tomllib.loads(pyproject.read_text())["project"]["entry-points"][
        "opentelemetry_instrumentor"
    ]
    module, _, name = group["pyflare_openai"].partition(":")
    assert getattr(import_module(module), name) is OpenAIInstrumentor


def test_init_instruments_and_spans_reach_the_store(run_python, tmp_path: Path) -> None:
    server = OpenAIServer().start()
    try:
        child = run_python(
            f"""
            import json, openai, pyflare
            pyflare.init("svc", store="duckdb:///{tmp_path}/s.duckdb", instrument="openai")
            client = openai.OpenAI(api_key="k", base_url="{server.base_url}")
            client.chat.completions.create(model="gpt-4o-mini", messages={MESSAGES!r})
            pyflare.flush()
            rows = pyflare.sql(
                "SELECT model_id, input_tokens, output_tokens, cost_micros FROM traces"
            ).to_dict("records")
            print("RESULT", json.dumps(rows))
            """
        )
    finally:
        server.stop()
    (row,) = run_python.result(child.stdout)
    assert row["model_id"] == "gpt-4o-mini"
    assert (row["input_tokens"], row["output_tokens"]) == (4, 2)
    assert row["cost_micros"] > 0
