"""Process-wide state shared by the decorator, spans and init().

Kept in one small object so the hot path reads a few attributes and nothing
else. Before :func:`pyflare.init` runs, spans go to whatever OTel provider is
global (usually none: non-recording spans, near-zero cost).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from pyflare._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["STATE", "after_fork_in_child", "warn_once"]

logger = logging.getLogger("pyflare")

INSTRUMENTATION_NAME = "pyflare"


class State:
    """What the hot path needs, resolved once by init()."""

    __slots__ = (
        "budget_observer",
        "capture_inputs",
        "capture_outputs",
        "clock",
        "max_chars",
        "pipeline",
        "preview_margin",
        "tracer",
    )

    def __init__(self) -> None:
        self.tracer: trace.Tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__)
        self.capture_inputs = True
        self.capture_outputs = True
        self.max_chars = 1000
        # Captured past max_chars when masking will cut previews to size later.
        self.preview_margin = 0
        self.clock: Callable[[], int] = time.time_ns
        self.pipeline: Any = None
        # Set by pyflare.budget(): sees every finished span (cost budgets).
        self.budget_observer: Callable[[Any], None] | None = None


STATE = State()

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``key`` is seen in this process, then never again."""
    if key in _warned:
        return
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.log(level, message, *args)


def reset_warnings() -> None:
    """Forget which warnings were given (for tests)."""
    with _warned_lock:
        _warned.clear()


def after_fork_in_child(owner: object, method: str) -> None:
    """Call ``owner.<method>()`` in a forked child, for as long as ``owner`` lives.

    Locks and threads don't survive fork(); objects that hold them reset here.
    """
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(owner)

    def hook() -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    os.register_at_fork(after_in_child=hook)
