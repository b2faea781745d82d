"""Turn PyFlare's instrumentors on and off by library name.

``pyflare.instrument("openai")`` (or a list of names, or ``"auto"`` for every
supported library that is importable) patches the library so that each model
call becomes a span; ``pyflare.uninstrument()`` puts the originals back. Both
are idempotent and thread-safe.

Each instrumentor is also a plain OpenTelemetry ``BaseInstrumentor``
(``pyflare.instrumentation.openai.OpenAIInstrumentor``…), registered under the
``opentelemetry_instrumentor`` entry-point group so ``opentelemetry-instrument``
picks it up. PyTorch is instrumented per model with ``pyflare.instrument_torch``,
not by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any, Final, NamedTuple, Protocol

from pyflare.errors import InvalidArgumentError

__all__ = ["SUPPORTED", "instrument", "instrumented", "uninstrument"]

logger = logging.getLogger("pyflare.instrumentation")


class BaseInstrumentor(Protocol):
    """What this module uses of an OpenTelemetry ``BaseInstrumentor``."""

    @property
    def is_instrumented_by_opentelemetry(self) -> bool: ...

    def instrument(self, **kwargs: Any) -> Any: ...

    def uninstrument(self, **kwargs: Any) -> Any: ...

    def _check_dependency_conflicts(self) -> Any: ...


class _Entry(NamedTuple):
    module: str  # where the instrumentor class lives
    cls: str
    library: str  # the import name of the instrumented library
    extra: str  # the pip extra that installs it


_REGISTRY: Final[dict[str, _Entry]] = {
    "openai": _Entry("pyflare.instrumentation.openai", "OpenAIInstrumentor", "openai", "openai"),
    "langchain": _Entry(
        "pyflare.instrumentation.langchain", "LangChainInstrumentor", "langchain_core", "langchain"
    ),
}

#: Library names :func:`instrument` accepts (besides ``"auto"``).
SUPPORTED: Final = tuple(_REGISTRY)

_lock = threading.RLock()


def _names(libraries: str | Sequence[str] | None, where: str) -> tuple[list[str], bool]:
    """The names asked for, checked, and whether they came from ``"auto"``."""
    if libraries is None or libraries == "auto":
        return [n for n in SUPPORTED if _importable(_REGISTRY[n].library)], True
    items: Sequence[object] = [libraries] if isinstance(libraries, str) else libraries
    if not isinstance(items, Sequence) or not items:
        raise InvalidArgumentError(
            f"{where} takes a library name, a list of names or 'auto', got {libraries!r}"
        )
    names: list[str] = []
    for item in items:
        name = item.lower() if isinstance(item, str) else item
        if name not in _REGISTRY:
            raise InvalidArgumentError(
                f"{where}: unknown library {item!r}; supported: {', '.join(SUPPORTED)} "
                "(or 'auto'); PyTorch models are instrumented with pyflare.instrument_torch(model)"
            )
        if name not in names:
            names.append(name)
    return names, False


def _importable(library: str) -> bool:
    try:
        return importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):
        return False


def _instrumentor(name: str) -> BaseInstrumentor:
    entry = _REGISTRY[name]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        raise InvalidArgumentError(
            f"PyFlare's {name} instrumentation is not available in this installation: {exc}"
        ) from exc
    instance: BaseInstrumentor = getattr(module, entry.cls)()  # a singleton per class
    return instance


def instrument(libraries: str | Sequence[str] | None = "auto", **options: Any) -> list[str]:
    """Instrument libraries by name; returns the names instrumented now (new or not).

    ``libraries`` is a name from :data:`SUPPORTED`, a list of them, or ``"auto"``
    (every supported library that is importable). Calling it again for an
    instrumented library does nothing. A library whose installed version is outside
    the supported range is left unpatched, and the log says why.

    ``options`` go to the instrumentors that take them, for example
    ``include_stream_usage=True`` for OpenAI (see
    :class:`pyflare.instrumentation.openai.OpenAIInstrumentor`) or ``tracer_provider``
    (all of them).

    Raises:
        InvalidArgumentError: an unknown library name, a library named explicitly
            that is not installed, or an option none of the chosen instrumentors takes.
    """
    names, auto = _names(libraries, "pyflare.instrument()")
    if not auto:
        for name in names:
            entry = _REGISTRY[name]
            if not _importable(entry.library):
                raise InvalidArgumentError(
                    f"can't instrument {name!r}: the {entry.library} package is not installed; "
                    f'install it with pip install "pyflare[{entry.extra}]"'
                )
    done: list[str] = []
    with _lock:
        instrumentors = {name: _instrumentor(name) for name in names}
        _check_options(instrumentors, options)
        for name, instrumentor in instrumentors.items():
            if instrumentor.is_instrumented_by_opentelemetry:
                done.append(name)
                continue
            conflict = instrumentor._check_dependency_conflicts()
            if conflict is not None:
                logger.error(
                    "PyFlare did not instrument %s: it supports %s, but %s is installed; "
                    "nothing was patched",
                    name,
                    conflict.required,
                    conflict.found or "no version of it",
                )
                continue
            accepted = _accepted(instrumentor)
            own = {k: v for k, v in options.items() if k in accepted}
            instrumentor.instrument(skip_dep_check=True, **own)
            if instrumentor.is_instrumented_by_opentelemetry:
                done.append(name)
    return done


def _accepted(instrumentor: BaseInstrumentor) -> frozenset[str]:
    declared: frozenset[str] = getattr(instrumentor, "options", frozenset())
    return declared | {"tracer_provider"}


def _check_options(instrumentors: dict[str, BaseInstrumentor], options: dict[str, Any]) -> None:
    if not options:
        return
    accepted: set[str] = set()
    for instrumentor in instrumentors.values():
        accepted |= _accepted(instrumentor)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InvalidArgumentError(
            f"pyflare.instrument(): no chosen instrumentor ({', '.join(instrumentors) or 'none'}) "
            f"takes the option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}"
        )


def uninstrument(libraries: str | Sequence[str] | None = None) -> list[str]:
    """Restore the original functions; returns the names that were instrumented.

    ``libraries`` as in :func:`instrument`; None (the default) or ``"auto"`` means
    every library PyFlare instrumented. A library that is not instrumented is left
    alone (no error).

    Raises:
        InvalidArgumentError: an unknown library name.
    """
    names, _ = _names(libraries, "pyflare.uninstrument()")
    done: list[str] = []
    with _lock:
        for name in names:
            if name not in instrumented():
                continue
            _instrumentor(name).uninstrument()
            done.append(name)
    return done


def instrumented() -> list[str]:
    """The names of the libraries PyFlare has instrumented right now."""
    out: list[str] = []
    for name, entry in _REGISTRY.items():
        # Only an instrumentor module already imported can have patched anything;
        # instrumentor classes are singletons, so calling one returns the instance.
        module = sys.modules.get(entry.module)
        cls = getattr(module, entry.cls, None) if module is not None else None
        if cls is not None and cls().is_instrumented_by_opentelemetry:
            out.append(name)
    return out
