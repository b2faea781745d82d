"""Carry the current OTel context (span and PyFlare context) into threads.

asyncio tasks copy the context by themselves; threads don't. With this
installed, a ``threading.Thread`` runs in the context of the code that called
``start()``, and a ``ThreadPoolExecutor`` job in the context of ``submit()``,
so spans made there are children of the right span and carry the user,
session and feature. Installed by :func:`pyflare.init` (``thread_context``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import wrapt
from opentelemetry import context as otel_context

__all__ = ["install", "installed", "uninstall", "wrap_context"]

_lock = threading.Lock()
_installed = False
_CONTEXTS: dict[int, otel_context.Context] = {}


def wrap_context(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bind ``func`` to the current context, for hand-made threads or callbacks."""
    ctx = otel_context.get_current()

    def run_in_context(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return func(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run_in_context


def _thread_start(
    wrapped: Callable[..., Any], instance: threading.Thread, args: Any, kwargs: Any
) -> Any:
    _CONTEXTS[id(instance)] = otel_context.get_current()
    try:
        return wrapped(*args, **kwargs)
    except BaseException:
        _CONTEXTS.pop(id(instance), None)
        raise


def _thread_run(
    wrapped: Callable[..., Any], instance: threading.Thread, args: Any, kwargs: Any
) -> Any:
    ctx = _CONTEXTS.pop(id(instance), None)
    if ctx is None:
        return wrapped(*args, **kwargs)
    token = otel_context.attach(ctx)
    try:
        return wrapped(*args, **kwargs)
    finally:
        otel_context.detach(token)


def _executor_submit(
    wrapped: Callable[..., Any], instance: futures.ThreadPoolExecutor, args: Any, kwargs: Any
) -> Any:
    if not args:
        return wrapped(*args, **kwargs)
    fn, *rest = args
    return wrapped(wrap_context(fn), *rest, **kwargs)


def install() -> None:
    """Patch ``Thread.start``/``run`` and ``ThreadPoolExecutor.submit`` (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        wrapt.wrap_function_wrapper(threading.Thread, "start", _thread_start)
        wrapt.wrap_function_wrapper(threading.Thread, "run", _thread_run)
        wrapt.wrap_function_wrapper(futures.ThreadPoolExecutor, "submit", _executor_submit)
        _installed = True


def uninstall() -> None:
    """Restore the original methods exactly."""
    global _installed
    with _lock:
        if not _installed:
            return
        for owner, name in (
            (threading.Thread, "start"),
            (threading.Thread, "run"),
            (futures.ThreadPoolExecutor, "submit"),
        ):
            patched = getattr(owner, name)
            setattr(owner, name, patched.__wrapped__)
        _installed = False


def installed() -> bool:
    return _installed
