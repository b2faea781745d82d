"""The server's span store from its URL (``server.store``, ``pyflare worker --store``).

| URL | store |
|---|---|
| ``duckdb:///path/file.duckdb`` (or a plain path) | :class:`~pyflare.store.duckdb.DuckDBSpanStore` |
| ``clickhouse://user:pass@host:8123/pyflare`` (``clickhouses://``: HTTPS) | :class:`ClickHouseSpanStore` over HTTP |
| ``chdb:///path/to/dir`` (``?database=pyflare``) | :class:`ClickHouseSpanStore` on the in-process engine |

URLs are parsed by :mod:`pyflare_server.storage.urls`; a bad one raises
``ConfigError`` naming what is wrong. A backend that can't be reached or
opened raises ``StoreError`` with the URL, its password hidden. chdb runs one
engine per process: a second chdb path, while a store on the first is open,
is refused with a message saying so.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pyflare.errors import StoreError
from pyflare_server.storage.urls import ChdbURL, ClickHouseURL, DuckDBURL, parse_store_url

if TYPE_CHECKING:
    from pyflare.store.base import SpanStore
    from pyflare_server.storage._clickhouse_schema import Retention

__all__ = ["chdb_client", "clickhouse_client", "open_server_store"]

# An HTTP client shared by threads must not pin a session: ClickHouse runs one
# query at a time per session.
_HTTP_OPTIONS: dict[str, Any] = {"autogenerate_session_id": False, "connect_timeout": 10}


def _clickhouse_connect() -> Any:
    try:
        import clickhouse_connect
    except ImportError as exc:
        raise StoreError(
            "a ClickHouse store needs clickhouse-connect: pip install 'pyflare[scaled]'"
        ) from exc
    return clickhouse_connect


def chdb_client(path: str | os.PathLike[str]) -> Any:
    """A ``clickhouse_connect`` client on the in-process ClickHouse engine at ``path``."""
    directory = os.path.abspath(os.fspath(path))
    clickhouse_connect = _clickhouse_connect()
    try:
        return clickhouse_connect.get_client(dsn=f"chdb://{directory}")
    except ImportError as exc:
        raise StoreError(
            "a chdb:// store needs the chdb package (pip install chdb), or use a "
            "ClickHouse server: clickhouse://user:pass@host:8123/pyflare"
        ) from exc
    except Exception as exc:
        message = str(exc)
        if "different path" in message or "already initialized" in message:
            raise StoreError(
                f"chdb runs one engine per process and this process already has one open "
                f"elsewhere; cannot open chdb:///{directory}. Close the other store first, or "
                "use the same directory (one database per store: ?database=NAME)"
            ) from exc
        raise StoreError(f"cannot open the ClickHouse engine at {directory}: {message}") from exc


def clickhouse_client(url: ClickHouseURL) -> Any:
    """A ``clickhouse_connect`` HTTP client for a ClickHouse server."""
    clickhouse_connect = _clickhouse_connect()
    try:
        return clickhouse_connect.get_client(
            host=url.host,
            port=url.port,
            username=url.username,
            password=url.password,
            secure=url.secure,
            **_HTTP_OPTIONS,
        )
    except Exception as exc:
        raise StoreError(
            f"cannot reach ClickHouse at {url.redacted()}: {exc}; check the host, port and "
            "credentials in server.store"
        ) from exc


def open_server_store(
    url: str, *, read_only: bool = False, retention: Retention | None = None
) -> SpanStore:
    """Open the span store ``url`` names (a plain path is a DuckDB file).

    ``retention`` sets a new ClickHouse database's TTLs (default: the spec's).
    ``read_only`` applies to DuckDB; ClickHouse access rights are the server's.
    """
    text = url.strip() if isinstance(url, str) else url
    if isinstance(text, str) and "://" not in text:
        from pyflare.store.duckdb import DuckDBSpanStore

        return DuckDBSpanStore(text, read_only=read_only)
    parsed = parse_store_url(text)
    if isinstance(parsed, DuckDBURL):
        from pyflare.store.duckdb import DuckDBSpanStore

        return DuckDBSpanStore(parsed.path, read_only=read_only)
    from pyflare_server.storage._clickhouse_schema import Retention as _Retention
    from pyflare_server.storage.clickhouse import ClickHouseSpanStore

    keep = retention if retention is not None else _Retention()
    if isinstance(parsed, ChdbURL):
        client = chdb_client(parsed.path)
        return ClickHouseSpanStore(
            client, database=parsed.database, retention=keep, label=parsed.redacted()
        )
    if not isinstance(parsed, ClickHouseURL):
        raise StoreError(f"{parsed.redacted()} is not a span store URL")
    client = clickhouse_client(parsed)
    return ClickHouseSpanStore(
        client, database=parsed.database, retention=keep, label=parsed.redacted()
    )
