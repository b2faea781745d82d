"""pyflare.context(): tags that follow the work, in-process and across processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import context as otel_context
from opentelemetry.propagate import extract, inject

import pyflare
from pyflare import semconv as sc
from pyflare.testing import CapturedSpans
from pyflare.tracing import threads


@pytest.fixture
def thread_context() -> Iterator[None]:
    was_installed = threads.installed()
    threads.install()
    try:
        yield
    finally:
        if not was_installed:
            threads.uninstall()


def test_every_span_inside_carries_the_context(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="answer")
    def answer() -> None:
        with pyflare.span("retrieve"):
            pass

    with pyflare.context(
        user_id="u1", session_id="s9", feature_id="search", team="growth", environment="prod"
    ):
        answer()
    answer()  # outside: no tags
    spans = pyflare_capture.spans
    tagged = spans[:2]
    for span in tagged:
        attrs = span.attributes
        assert attrs[sc.USER_ID] == "u1"
        assert attrs[sc.SESSION_ID] == "s9"
        assert attrs[sc.FEATURE_ID] == "search"
        assert attrs[sc.TEAM] == "growth"
        assert attrs[sc.ENVIRONMENT] == "prod"
    for span in spans[2:]:
        assert sc.USER_ID not in span.attributes


def test_nested_context_adds_and_overrides(pyflare_capture: CapturedSpans) -> None:
    with pyflare.context(user_id="u1", team="growth"):
        with pyflare.context(user_id="u2", session_id="s1", attributes={"tenant": "acme"}):
            assert pyflare.current_context() == {
                "user.id": "u2",
                "pyflare.team": "growth",
                "session.id": "s1",
                "tenant": "acme",
            }
            with pyflare.span("inner"):
                pass
        with pyflare.span("outer"):
            pass
    inner = pyflare_capture.span("inner").attributes
    outer = pyflare_capture.span("outer").attributes
    assert (inner["user.id"], inner["pyflare.team"], inner["session.id"], inner["tenant"]) == (
        "u2",
        "growth",
        "s1",
        "acme",
    )
    assert outer["user.id"] == "u1"
    assert "tenant" not in outer
    assert pyflare.current_context() == {}


def test_span_attributes_set_by_instrumentation_win(pyflare_capture: CapturedSpans) -> None:
    with pyflare.context(user_id="from-context"):
        with pyflare.span("call", attributes={"user.id": "explicit"}):
            pass
    assert pyflare_capture.span("call").attributes["user.id"] == "explicit"


def test_unrelated_baggage_is_not_copied(pyflare_capture: CapturedSpans) -> None:
    from opentelemetry import baggage

    token = otel_context.attach(baggage.set_baggage("upstream.secret", "s3cr3t"))
    try:
        with pyflare.span("call"):
            pass
    finally:
        otel_context.detach(token)
    assert "upstream.secret" not in pyflare_capture.span("call").attributes


async def test_asyncio_tasks_inherit_context(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="task")
    async def task(i: int) -> int:
        await asyncio.sleep(0)
        return i

    with pyflare.context(user_id="async-user"):
        await asyncio.gather(*(asyncio.create_task(task(i)) for i in range(3)))
    assert [s.attributes["user.id"] for s in pyflare_capture.spans] == ["async-user"] * 3


def test_threads_and_pools_inherit_context_and_parent(
    pyflare_capture: CapturedSpans, thread_context: None
) -> None:
    @pyflare.trace(name="work")
    def work() -> None:
        return None

    with pyflare.context(user_id="threaded"), pyflare.span("parent") as parent:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda _: work(), range(2)))
            pool.submit(work).result()
    works = [s for s in pyflare_capture.spans if s.name == "work"]
    assert len(works) == 4
    for span in works:
        assert span.attributes["user.id"] == "threaded"
        assert span.parent.span_id == parent.get_span_context().span_id


def test_threads_without_install_do_not_inherit(pyflare_capture: CapturedSpans) -> None:
    assert not threads.installed()

    @pyflare.trace(name="work")
    def work() -> None:
        return None

    with pyflare.context(user_id="lost"):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        # wrap_context is the manual way
        thread = threading.Thread(target=pyflare.wrap_context(work))
        thread.start()
        thread.join()
    first, second = pyflare_capture.spans
    assert "user.id" not in first.attributes
    assert second.attributes["user.id"] == "lost"


def test_uninstall_restores_the_originals_exactly() -> None:
    original = (
        threading.Thread.start,
        threading.Thread.run,
        ThreadPoolExecutor.submit,
    )
    threads.install()
    threads.install()  # idempotent
    assert threading.Thread.start is not original[0]
    threads.uninstall()
    assert (threading.Thread.start, threading.Thread.run, ThreadPoolExecutor.submit) == original


def test_context_crosses_processes_as_w3c_baggage(pyflare_capture: CapturedSpans) -> None:
    carrier: dict[str, str] = {}
    with pyflare.context(user_id="u-remote", session_id="s-remote"), pyflare.span("client"):
        inject(carrier)
    assert "baggage" in carrier and "traceparent" in carrier
    assert "user.id=u-remote" in carrier["baggage"]
    # The receiving process extracts the headers and continues the trace.
    token = otel_context.attach(extract(carrier))
    try:
        with pyflare.span("server"):
            pass
    finally:
        otel_context.detach(token)
    server = pyflare_capture.span("server")
    client = pyflare_capture.span("client")
    assert server.attributes["user.id"] == "u-remote"
    assert server.attributes["session.id"] == "s-remote"
    assert server.context.trace_id == client.context.trace_id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_id": 3.5}, "user_id=...) must be a string"),
        ({"user_id": True}, "user_id=...) must be a string"),
        ({"session_id": ""}, "must be 1 to 256 characters"),
        ({"team": "x" * 300}, "must be 1 to 256 characters"),
        ({"attributes": ["a"]}, "attributes=...) must be a mapping"),
        ({"attributes": {"": "v"}}, "keys must be non-empty strings"),
        ({"attributes": {"k": object()}}, "k=...) must be a string"),
    ],
)
def test_bad_context_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(
        pyflare.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        with pyflare.context(**kwargs):  # type: ignore[arg-type]
            pass
    assert pyflare.current_context() == {}


def test_integer_ids_are_accepted(pyflare_capture: CapturedSpans) -> None:
    with pyflare.context(user_id=42), pyflare.span("s"):  # type: ignore[arg-type]
        pass
    assert pyflare_capture.span("s").attributes["user.id"] == "42"


async def test_context_as_a_decorator_on_sync_and_async_functions(
    pyflare_capture: CapturedSpans,
) -> None:
    @pyflare.context(feature_id="search", attributes={"tenant": "acme"})
    @pyflare.trace(name="sync")
    def sync_call() -> dict[str, str]:
        return pyflare.current_context()

    @pyflare.context(feature_id="chat")
    @pyflare.trace(name="async")
    async def async_call() -> dict[str, str]:
        await asyncio.sleep(0)
        return pyflare.current_context()

    with pyflare.context(user_id="u7"):
        assert sync_call() == {"user.id": "u7", "pyflare.feature_id": "search", "tenant": "acme"}
        assert await async_call() == {"user.id": "u7", "pyflare.feature_id": "chat"}
    assert pyflare.current_context() == {}
    assert pyflare_capture.span("sync").attributes["tenant"] == "acme"
    assert pyflare_capture.span("async").attributes["pyflare.feature_id"] == "chat"
    assert pyflare_capture.span("async").attributes["user.id"] == "u7"


def test_one_context_object_can_be_entered_again() -> None:
    tags = pyflare.context(team="growth")
    with tags:
        with tags:
            assert pyflare.current_context() == {"pyflare.team": "growth"}
        assert pyflare.current_context() == {"pyflare.team": "growth"}
    assert pyflare.current_context() == {}


def test_context_refuses_generators_and_non_callables() -> None:
    def gen():  # type: ignore[no-untyped-def]
        yield 1

    with pytest.raises(pyflare.InvalidArgumentError, match="can't decorate a generator"):
        pyflare.context(user_id="u")(gen)
    with pytest.raises(pyflare.InvalidArgumentError, match="decorates functions"):
        pyflare.context(user_id="u")(42)  # type: ignore[arg-type]
