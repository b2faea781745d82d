"""PyFlare's self-hosted server (``pip install "pyflare[server]"``).

``pyflare server`` runs it; embedders build the ASGI app with
:func:`create_app` or run every listener with :func:`serve`. The names load
when first used, so ``import pyflare_server`` (which the ``pyflare`` command
does to find the server's sub-commands) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyflare_server.app import ServerCore, create_app
    from pyflare_server.server import serve
    from pyflare_server.settings import ServerSettings

__all__ = ["ServerCore", "ServerSettings", "create_app", "serve"]

_HOMES = {
    "ServerCore": "pyflare_server.app",
    "create_app": "pyflare_server.app",
    "serve": "pyflare_server.server",
    "ServerSettings": "pyflare_server.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pyflare_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
