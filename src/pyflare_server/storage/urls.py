"""Backend URLs: one parser for every store, queue and vector backend the server reaches.

| URL | backend |
|---|---|
| ``duckdb:///rel/file.duckdb``, ``duckdb:////abs/file.duckdb``, ``duckdb:///:memory:`` | DuckDB file |
| ``clickhouse://user:pass@host:8123/pyflare`` (``clickhouses://``: HTTPS, port 8443) | ClickHouse over HTTP |
| ``chdb:///rel/dir``, ``chdb:////abs/dir`` (optional ``?database=pyflare``) | ClickHouse in-process (chdb) |
| ``kafka://host1:9092,host2:9092`` (port defaults to 9092) | Kafka brokers |
| ``qdrant://host:6333`` (``qdrants://``: TLS; ``qdrant://:API_KEY@host:6333``) | Qdrant server |
| ``qdrant+local:///rel/dir``, ``qdrant+local:///:memory:`` | Qdrant local mode (qdrant-client) |

Paths follow SQLAlchemy's convention: three slashes then a relative path, four
for an absolute one; they are taken as written (no percent-decoding). User names and passwords are percent-decoded. Every
problem raises :class:`~pyflare.errors.ConfigError` naming the setting, the URL
(password hidden), what is wrong and the accepted forms.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import ClassVar, cast

from pyflare.errors import ConfigError

__all__ = [
    "QUEUE_SCHEMES",
    "STORE_SCHEMES",
    "VECTOR_SCHEMES",
    "BackendURL",
    "ChdbURL",
    "ClickHouseURL",
    "DuckDBURL",
    "KafkaURL",
    "QdrantLocalURL",
    "QdrantURL",
    "hide_password",
    "parse_backend_url",
    "parse_queue_url",
    "parse_store_url",
    "parse_vectors_url",
    "url_problem",
]

#: The schemes each kind of backend accepts.
STORE_SCHEMES: tuple[str, ...] = ("duckdb", "clickhouse", "clickhouses", "chdb")
QUEUE_SCHEMES: tuple[str, ...] = ("kafka",)
VECTOR_SCHEMES: tuple[str, ...] = ("duckdb", "qdrant", "qdrants", "qdrant+local")

_EXAMPLES: dict[str, str] = {
    "duckdb": "duckdb:///path/to/file.duckdb",
    "clickhouse": "clickhouse://user:pass@host:8123/pyflare",
    "clickhouses": "clickhouses://user:pass@host:8443/pyflare",
    "chdb": "chdb:///path/to/dir",
    "kafka": "kafka://host1:9092,host2:9092",
    "qdrant": "qdrant://host:6333",
    "qdrants": "qdrants://host:6333",
    "qdrant+local": "qdrant+local:///path/to/dir",
}
_TLS = frozenset({"clickhouses", "qdrants"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Hostnames and IPv4 addresses (IPv6 comes bracketed and is checked apart).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
_MAX_PORT = 65_535


class _Bad(ValueError):
    """What is wrong with a URL (the caller adds the setting and the accepted forms)."""


@dataclass(frozen=True)
class BackendURL:
    """A parsed backend URL. ``str()`` gives it back with any password hidden."""

    scheme: ClassVar[str] = ""

    def __str__(self) -> str:
        return self.redacted()

    def redacted(self) -> str:
        """The URL with the password (if any) as ``***``: safe for logs and errors."""
        raise NotImplementedError


@dataclass(frozen=True)
class DuckDBURL(BackendURL):
    """A DuckDB database file, or ``:memory:``."""

    scheme: ClassVar[str] = "duckdb"
    path: str

    def redacted(self) -> str:
        return _with_path("duckdb", self.path)


@dataclass(frozen=True)
class ClickHouseURL(BackendURL):
    """A ClickHouse server over HTTP(S) (``clickhouse-connect``)."""

    scheme: ClassVar[str] = "clickhouse"
    host: str
    port: int = 8123
    username: str = "default"
    password: str = field(default="", repr=False)
    database: str = "pyflare"
    secure: bool = False

    def redacted(self) -> str:
        secret = ":***" if self.password else ""
        user = urllib.parse.quote(self.username, safe="")
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{user}{secret}@{_netloc(self.host, self.port)}/{self.database}"


@dataclass(frozen=True)
class ChdbURL(BackendURL):
    """ClickHouse running in this process (chdb), its data in ``path``."""

    scheme: ClassVar[str] = "chdb"
    path: str
    database: str = "pyflare"

    def redacted(self) -> str:
        suffix = "" if self.database == "pyflare" else f"?database={self.database}"
        return _with_path("chdb", self.path) + suffix


@dataclass(frozen=True)
class KafkaURL(BackendURL):
    """Kafka bootstrap brokers as ``host:port`` (the client's ``bootstrap.servers``)."""

    scheme: ClassVar[str] = "kafka"
    brokers: tuple[str, ...]

    def redacted(self) -> str:
        return "kafka://" + ",".join(self.brokers)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.brokers)


@dataclass(frozen=True)
class QdrantURL(BackendURL):
    """A Qdrant server (REST port), reached with ``qdrant-client``."""

    scheme: ClassVar[str] = "qdrant"
    host: str
    port: int = 6333
    https: bool = False
    api_key: str | None = field(default=None, repr=False)

    def redacted(self) -> str:
        secret = ":***@" if self.api_key else ""
        scheme = "qdrants" if self.https else "qdrant"
        return f"{scheme}://{secret}{_netloc(self.host, self.port)}"

    @property
    def http_url(self) -> str:
        """The server's address as ``QdrantClient(url=...)`` takes it."""
        return f"{'https' if self.https else 'http'}://{_netloc(self.host, self.port)}"


@dataclass(frozen=True)
class QdrantLocalURL(BackendURL):
    """Qdrant's local mode: ``qdrant-client`` keeps the collections in ``path`` (or memory)."""

    scheme: ClassVar[str] = "qdrant+local"
    path: str

    def redacted(self) -> str:
        return _with_path("qdrant+local", self.path)


def _with_path(scheme: str, path: str) -> str:
    return f"{scheme}:///{path}"


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hide_password(url: str) -> str:
    """The URL as the user wrote it, any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    return f"{scheme}://{netloc}{slash}{tail}"


def _port(text: str, default: int) -> int:
    if text == "":
        return default
    if not text.isdigit() or not 0 < int(text) <= _MAX_PORT:
        raise _Bad(f"the port {text!r} is not a number from 1 to 65535")
    return int(text)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` with an optional bracketed IPv6 host."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise _Bad(f"{text!r} is not host:port (an IPv6 host goes in brackets: [::1]:9092)")
        if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise _Bad(f"{host!r} is not an IPv6 address")
        return host, _port(rest[1:], default_port)
    host, _, port = text.partition(":")
    if ":" in port:
        raise _Bad(f"{text!r} is not host:port (an IPv6 host goes in brackets: [::1]:9092)")
    if not host:
        raise _Bad(f"{text!r} names no host")
    if not _HOST.fullmatch(host):
        raise _Bad(f"the host {host!r} is not a hostname or IP address")
    return host, _port(port, default_port)


def _split(url: str) -> tuple[str, str, str, dict[str, str]]:
    """``(netloc, path, fragment, query)`` of ``scheme://netloc/path?query``."""
    rest = url.partition("://")[2]
    rest, hash_, fragment = rest.partition("#")
    if hash_:
        raise _Bad(f"a URL fragment ('#{fragment}') has no meaning here")
    rest, _, query_text = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(query_text, keep_blank_values=True):
        if key in query:
            raise _Bad(f"the option {key!r} is given twice")
        query[key] = value
    return netloc, (slash + path), fragment, query


def _no_options(query: dict[str, str], allowed: Collection[str] = ()) -> None:
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise _Bad(f"unknown option(s) {', '.join(unknown)} (accepted: {known})")


def _file_path(netloc: str, path: str, what: str) -> str:
    """The path of ``scheme:///path``: relative after three slashes, absolute after four."""
    if netloc:
        raise _Bad(
            f"{netloc!r} sits where a host would; a {what} URL has none: write three "
            "slashes then the path (four for an absolute path)"
        )
    path = path.removeprefix("/")
    if not path:
        raise _Bad(f"it names no {what}")
    if "\x00" in path:
        raise _Bad("the path contains a NUL character")
    return path


def _bool_option(query: dict[str, str], key: str) -> bool:
    value = query.get(key, "false").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise _Bad(f"the option {key}={query[key]!r} is not true or false")


def _duckdb(url: str) -> DuckDBURL:
    netloc, path, _, query = _split(url)
    _no_options(query)
    file = _file_path(netloc, path, "database file")
    if file.endswith("/"):
        raise _Bad("it names a directory, not a database file")
    return DuckDBURL(path=file)


def _database(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise _Bad(f"the database name {name!r} is not an identifier (letters, digits, _)")
    return name


def _clickhouse(url: str, secure: bool) -> ClickHouseURL:
    netloc, path, _, query = _split(url)
    _no_options(query, ("secure",))
    secure = secure or _bool_option(query, "secure")
    userinfo, at, hostport = netloc.rpartition("@")
    if not hostport:
        raise _Bad("it names no host")
    username, password = "default", ""
    if at:
        user, colon, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or "default"
        password = urllib.parse.unquote(secret) if colon else ""
    host, port = _host_port(hostport, 8443 if secure else 8123)
    name = path.strip("/")
    if "/" in name:
        raise _Bad(f"the path {path!r} must be one database name, such as /pyflare")
    database = _database(urllib.parse.unquote(name)) if name else "pyflare"
    return ClickHouseURL(
        host=host,
        port=port,
        username=username,
        password=password,
        database=database,
        secure=secure,
    )


def _chdb(url: str) -> ChdbURL:
    netloc, path, _, query = _split(url)
    _no_options(query, ("database",))
    directory = _file_path(netloc, path, "data directory")
    if directory == ":memory:":
        raise _Bad("chdb keeps its data in a directory; name one (chdb:///path/to/dir)")
    return ChdbURL(
        path=directory.rstrip("/") or "/", database=_database(query.get("database", "pyflare"))
    )


def _kafka(url: str) -> KafkaURL:
    netloc, path, _, query = _split(url)
    _no_options(query)
    if "@" in netloc:
        raise _Bad("credentials don't go in the broker list (configure collector.kafka)")
    if path not in {"", "/"}:
        raise _Bad(f"the path {path!r} has no meaning: list brokers only")
    if not netloc:
        raise _Bad("it names no broker")
    brokers: list[str] = []
    for item in netloc.split(","):
        if not item.strip():
            raise _Bad("an empty entry in the broker list (two commas, or one at an end)")
        host, port = _host_port(item.strip(), 9092)
        broker = _netloc(host, port)
        if broker not in brokers:
            brokers.append(broker)
    return KafkaURL(brokers=tuple(brokers))


def _qdrant(url: str, https: bool) -> QdrantURL:
    netloc, path, _, query = _split(url)
    _no_options(query)
    if path not in {"", "/"}:
        raise _Bad(f"the path {path!r} has no meaning: give host:port only")
    userinfo, at, hostport = netloc.rpartition("@")
    api_key: str | None = None
    if at:
        user, colon, secret = userinfo.partition(":")
        if user or not colon or not secret:
            raise _Bad("an API key is written as qdrant://:API_KEY@host:6333 (no user name)")
        api_key = urllib.parse.unquote(secret)
    host, port = _host_port(hostport, 6333)
    return QdrantURL(host=host, port=port, https=https, api_key=api_key)


def _qdrant_local(url: str) -> QdrantLocalURL:
    netloc, path, _, query = _split(url)
    _no_options(query)
    directory = _file_path(netloc, path, "directory")
    return QdrantLocalURL(
        path=directory if directory == ":memory:" else directory.rstrip("/") or "/"
    )


def _parse(url: str, scheme: str) -> BackendURL:
    if scheme == "duckdb":
        return _duckdb(url)
    if scheme in {"clickhouse", "clickhouses"}:
        return _clickhouse(url, secure=scheme == "clickhouses")
    if scheme == "chdb":
        return _chdb(url)
    if scheme == "kafka":
        return _kafka(url)
    if scheme in {"qdrant", "qdrants"}:
        return _qdrant(url, https=scheme == "qdrants")
    return _qdrant_local(url)


def url_problem(url: object, accept: Collection[str] | None = None) -> str | None:
    """What is wrong with ``url`` as a backend of ``accept``'s schemes, or None when nothing.

    The text says what is wrong and ends with the accepted forms; it never holds
    a password. Settings validators use it (the loader adds the key and source).
    """
    result = _parse_or_problem(url, accept)
    return result if isinstance(result, str) else None


def _parse_or_problem(url: object, accept: Collection[str] | None) -> BackendURL | str:
    schemes = tuple(accept) if accept is not None else tuple(_EXAMPLES)
    # The TLS variants (clickhouses, qdrants) are left out of the list to keep it short.
    forms = ", ".join(_EXAMPLES[s] for s in schemes if s in _EXAMPLES and s not in _TLS)
    if not isinstance(url, str):
        return f"not a URL string but {type(url).__name__}; expected {forms}"
    text = url.strip()
    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        return f"not a URL; expected {forms}"
    if scheme not in _EXAMPLES:
        return f"unknown scheme {scheme!r}; expected {forms}"
    if scheme not in schemes:
        return f"a {scheme} URL can't be used here; expected {forms}"
    try:
        return _parse(text, scheme)
    except _Bad as exc:
        return f"{exc}; expected {_EXAMPLES[scheme]}"


def parse_backend_url(
    url: str, *, setting: str = "url", accept: Collection[str] | None = None
) -> BackendURL:
    """Parse a backend URL of any kind (``accept`` narrows the schemes allowed).

    Raises:
        ConfigError: not a string, an unknown or unaccepted scheme, or a URL of a
            known scheme with a problem; the message names ``setting``, shows
            the URL with its password hidden and lists the accepted forms.
    """
    result = _parse_or_problem(url, accept)
    if isinstance(result, str):
        shown = f"={hide_password(url.strip())!r}" if isinstance(url, str) else ""
        raise ConfigError(f"{setting}{shown}: {result}")
    return result


def parse_store_url(url: str, *, setting: str = "server.store") -> BackendURL:
    """A span store: :class:`DuckDBURL`, :class:`ClickHouseURL` or :class:`ChdbURL`."""
    return parse_backend_url(url, setting=setting, accept=STORE_SCHEMES)


def parse_queue_url(url: str, *, setting: str = "collector.kafka.brokers") -> KafkaURL:
    """A span queue: :class:`KafkaURL`."""
    return cast("KafkaURL", parse_backend_url(url, setting=setting, accept=QUEUE_SCHEMES))


def parse_vectors_url(url: str, *, setting: str = "server.vectors") -> BackendURL:
    """A vector store: :class:`DuckDBURL`, :class:`QdrantURL` or :class:`QdrantLocalURL`."""
    return parse_backend_url(url, setting=setting, accept=VECTOR_SCHEMES)
