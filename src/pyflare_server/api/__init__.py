"""The query API (REST, ``/api/v1``): one module per resource."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyflare_server.api import drift, metrics, openapi, traces

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from pyflare.store.base import SpanStore

__all__ = ["routes"]


def routes(store: SpanStore) -> list[BaseRoute]:
    """Every API route, reading from ``store``."""
    return [
        *traces.routes(store),
        *drift.routes(store),
        *metrics.routes(store),
        *openapi.routes(),
    ]
