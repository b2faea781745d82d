"""The server's settings: the spec's ``collector.yaml`` shape, checked by pydantic.

Each setting resolves as: the command's flags (``overrides``) > ``PYFLARE_*``
environment variables > the YAML file > the default. This is the only module
of the server that reads ``os.environ``.

| variable | setting |
|---|---|
| PYFLARE_CONFIG | the YAML file (when ``--config`` is not given) |
| PYFLARE_STORE | server.store |
| PYFLARE_HOST | the host of every endpoint (OTLP/gRPC, OTLP/HTTP, API) |
| PYFLARE_OTLP_HTTP_PORT | the port of collector.otlp.http.endpoint |
| PYFLARE_OTLP_GRPC_PORT | the port of collector.otlp.grpc.endpoint |
| PYFLARE_API_PORT | the port of server.api.endpoint |
| PYFLARE_LOG_LEVEL | server.log_level |
| PYFLARE_COLLECTOR__A__B, PYFLARE_SERVER__A__B | any key: collector.a.b, server.a.b |

A variable set to an empty string counts as unset. Lists and mappings in a
``PYFLARE_COLLECTOR__…`` variable are written as YAML (``[a, b]``); a list of
strings may also be comma-separated. Errors are :class:`~pyflare.errors.ConfigError`
naming the key path, the problem and where the value came from.
"""

from __future__ import annotations

import os
import socket
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from pyflare.config import store_path, store_url
from pyflare.errors import ConfigError
from pyflare.exporters.masking import SpanMasker
from pyflare.mlfields import stringify
from pyflare.tracing.masking import DETECTORS, PIIConfig, PIIMasker

__all__ = [
    "DEFAULT_STORE",
    "ApiSettings",
    "AttributeMatch",
    "BatcherSettings",
    "CollectorSettings",
    "CorsSettings",
    "EnricherSettings",
    "GrpcSettings",
    "HttpSettings",
    "KafkaProducerSettings",
    "KafkaSettings",
    "KafkaTopics",
    "OtlpSettings",
    "PiiSettings",
    "SamplingRule",
    "SamplingSettings",
    "ServerSection",
    "ServerSettings",
    "split_endpoint",
]

DEFAULT_STORE = "duckdb:///./.pyflare/server.duckdb"
_MAX_PORT = 65_535


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of a ``host:port`` endpoint; an IPv6 host loses its brackets.

    Raises:
        ValueError: not ``host:port`` with a port from 0 to 65535.
    """
    host, sep, port = endpoint.strip().rpartition(":")
    if not sep:
        raise ValueError("expected host:port, such as 0.0.0.0:4318")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("expected host:port with an IPv6 host in brackets, such as [::]:4318")
    return host or "0.0.0.0", _port(port)


def _port(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a port number from 0 to 65535")
    try:
        port = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError("expected a port number from 0 to 65535") from None
    if not 0 <= port <= _MAX_PORT:
        raise ValueError("expected a port number from 0 to 65535")
    return port


def _join_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoint(value: str) -> str:
    host, port = split_endpoint(value)
    return _join_endpoint(host, port)


def _attribute_text(value: object) -> object:
    """YAML scalars as the attribute maps store them (``true``, ``3``, ``0.5``)."""
    return stringify(value) if isinstance(value, bool | int | float) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _acks(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return "all" if value == -1 else str(value)
    return _lower(value)


Endpoint = Annotated[str, AfterValidator(_endpoint)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        # "batcher:" with every key commented out is None in YAML: take the defaults.
        return {} if data is None else data


class GrpcSettings(_Section):
    """OTLP/gRPC receiver."""

    endpoint: Endpoint = "0.0.0.0:4317"
    max_recv_msg_size_mib: PositiveInt = 16
    max_concurrent_streams: PositiveInt = 100


class CorsSettings(_Section):
    """Browsers allowed to send OTLP/HTTP."""

    allowed_origins: tuple[str, ...] = ("*",)


class HttpSettings(_Section):
    """OTLP/HTTP receiver."""

    endpoint: Endpoint = "0.0.0.0:4318"
    cors: CorsSettings = CorsSettings()
    max_body_mib: PositiveInt = 16
    read_timeout_s: PositiveFloat = 10.0


class OtlpSettings(_Section):
    grpc: GrpcSettings = GrpcSettings()
    http: HttpSettings = HttpSettings()
    # Processes that decode request bodies (0: decode in the server process;
    # unset: one per core beyond the first, at most 4).
    decode_workers: Annotated[int, Field(ge=0, le=64)] | None = None


class BatcherSettings(_Section):
    """Group commit: how many rows one store write takes, how long it waits, how many may wait."""

    max_batch_size: PositiveInt = 1000
    timeout_ms: NonNegativeInt = 100
    max_queue_size: PositiveInt = 10_000


class AttributeMatch(_Section):
    """A span attribute equal to a value (compared as stored: ``true``, ``3``)."""

    key: NonEmpty
    value: Annotated[str, BeforeValidator(_attribute_text)]


class SamplingRule(_Section):
    """Spans of ``service`` and/or with ``attribute`` are kept at ``rate``."""

    service: NonEmpty | None = None
    attribute: AttributeMatch | None = None
    rate: Rate

    @model_validator(mode="after")
    def _matches_something(self) -> SamplingRule:
        if self.service is None and self.attribute is None:
            raise ValueError("a rule needs a service, an attribute {key, value}, or both")
        return self


_HIGH_PRIORITY = SamplingRule(attribute=AttributeMatch(key="priority", value="high"), rate=1.0)


class SamplingSettings(_Section):
    """Which traces are kept.

    A span's rate is the highest rate among the rules it matches, else
    ``default_rate``; a trace is kept at the highest rate of its spans, decided
    on its trace id so every batch decides the same. By default ``priority=high``
    traces are always kept (giving ``rules`` replaces that rule).
    """

    default_rate: Rate = 1.0
    rules: tuple[SamplingRule, ...] = (_HIGH_PRIORITY,)


class EnricherSettings(_Section):
    """Resource entries added to what the collector stores."""

    host: NonEmpty = Field(default_factory=socket.gethostname)
    environment: NonEmpty | None = None
    version: NonEmpty | None = None


class PiiSettings(_Section):
    """The SDK's PII masking, applied to spans and logs from other SDKs (see `PIIConfig`)."""

    enabled: bool = True
    default_action: str = "mask"
    detectors: tuple[str, ...] = DETECTORS
    patterns: dict[str, str] = Field(default_factory=dict)
    pattern_actions: dict[str, str] = Field(default_factory=dict)
    field_actions: dict[str, str] = Field(default_factory=dict)
    hash_salt: str = ""

    @model_validator(mode="after")
    def _valid_masker(self) -> PiiSettings:
        try:
            PIIMasker(self.pii_config())
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def pii_config(self) -> PIIConfig:
        return PIIConfig(**self.model_dump(exclude={"enabled"}))

    def span_masker(self) -> SpanMasker | None:
        """The masker decode applies to foreign attributes, or None when masking is off."""
        return SpanMasker(PIIMasker(self.pii_config())) if self.enabled else None


class KafkaTopics(_Section):
    traces: NonEmpty = "pyflare.traces"
    metrics: NonEmpty = "pyflare.metrics"
    logs: NonEmpty = "pyflare.logs"


class KafkaProducerSettings(_Section):
    compression: Annotated[
        Literal["none", "gzip", "snappy", "lz4", "zstd"], BeforeValidator(_lower)
    ] = "lz4"
    batch_size: PositiveInt = 16_384
    linger_ms: NonNegativeInt = 5
    acks: Annotated[Literal["0", "1", "all"], BeforeValidator(_acks)] = "all"


class KafkaSettings(_Section):
    """The scaled mode's queue (accepted and checked now, used from the scaled mode on)."""

    brokers: tuple[Endpoint, ...] = ()
    topics: KafkaTopics = KafkaTopics()
    producer: KafkaProducerSettings = KafkaProducerSettings()


class CollectorSettings(_Section):
    otlp: OtlpSettings = OtlpSettings()
    batcher: BatcherSettings = BatcherSettings()
    sampling: SamplingSettings = SamplingSettings()
    enricher: EnricherSettings = EnricherSettings()
    pii: PiiSettings = PiiSettings()
    kafka: KafkaSettings = KafkaSettings()


def _server_store(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        url = store_url(value)
    except ConfigError:
        raise ValueError(
            "expected duckdb:///path/to/file.duckdb, duckdb:///:memory: or a file path"
        ) from None
    if url is None or url == "none":
        raise ValueError("the server needs a store: duckdb:///path/to/file.duckdb")
    return url


class ApiSettings(_Section):
    endpoint: Endpoint = "0.0.0.0:8080"


LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class ServerSection(_Section):
    store: Annotated[str, BeforeValidator(_server_store)] = DEFAULT_STORE
    api: ApiSettings = ApiSettings()
    log_level: Annotated[LogLevel, BeforeValidator(_lower)] = "info"


KeyPath = tuple[str, ...]

# Flags and variables that set part of an endpoint: name -> endpoint key paths.
_HOST_KEYS: tuple[KeyPath, ...] = (
    ("collector", "otlp", "grpc", "endpoint"),
    ("collector", "otlp", "http", "endpoint"),
    ("server", "api", "endpoint"),
)
_PORT_KEYS: dict[str, KeyPath] = {
    "otlp_http_port": ("collector", "otlp", "http", "endpoint"),
    "otlp_grpc_port": ("collector", "otlp", "grpc", "endpoint"),
    "api_port": ("server", "api", "endpoint"),
}
_WHOLE_KEYS: dict[str, KeyPath] = {
    "store": ("server", "store"),
    "log_level": ("server", "log_level"),
}
OVERRIDES = frozenset({"host", *_PORT_KEYS, *_WHOLE_KEYS})
_NESTED_PREFIXES = ("PYFLARE_COLLECTOR__", "PYFLARE_SERVER__")


class ServerSettings(_Section):
    """Everything ``pyflare server`` is configured with. Build with :meth:`load`."""

    collector: CollectorSettings = CollectorSettings()
    server: ServerSection = ServerSection()

    @property
    def otlp_http_endpoint(self) -> str:
        return self.collector.otlp.http.endpoint

    @property
    def otlp_grpc_endpoint(self) -> str:
        return self.collector.otlp.grpc.endpoint

    @property
    def api_endpoint(self) -> str:
        return self.server.api.endpoint

    @property
    def otlp_http_host(self) -> str:
        return split_endpoint(self.otlp_http_endpoint)[0]

    @property
    def otlp_http_port(self) -> int:
        return split_endpoint(self.otlp_http_endpoint)[1]

    @property
    def otlp_grpc_host(self) -> str:
        return split_endpoint(self.otlp_grpc_endpoint)[0]

    @property
    def otlp_grpc_port(self) -> int:
        return split_endpoint(self.otlp_grpc_endpoint)[1]

    @property
    def api_host(self) -> str:
        return split_endpoint(self.api_endpoint)[0]

    @property
    def api_port(self) -> int:
        return split_endpoint(self.api_endpoint)[1]

    @property
    def store_path(self) -> str:
        """The DuckDB file (or ``:memory:``) that ``server.store`` names."""
        return store_path(self.server.store)

    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] = os.environ,
        overrides: Mapping[str, Any] | None = None,
    ) -> ServerSettings:
        """Resolve the settings: ``overrides`` > ``PYFLARE_*`` > the YAML file > defaults.

        ``config_file`` (else ``PYFLARE_CONFIG``) is a YAML file in the
        ``collector.yaml`` shape. ``overrides`` keys: store, host,
        otlp_http_port, otlp_grpc_port, api_port, log_level (None means not given).

        Raises:
            ConfigError: the file can't be read or parsed, or a value is not
                valid; the message names the key path, the problem and its source.
        """
        return _Loader(env).load(config_file, dict(overrides or {}))


class _Loader:
    """Merges the sources into one dict, remembering where each value came from."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.data: dict[str, Any] = {}
        self.origins: dict[KeyPath, str] = {}
        self.file_lines: dict[KeyPath, int] = {}
        self.file: str | None = None

    def load(
        self, config_file: str | os.PathLike[str] | None, overrides: dict[str, Any]
    ) -> ServerSettings:
        unknown = set(overrides) - OVERRIDES
        if unknown:
            raise ConfigError(
                f"unknown override(s) {sorted(unknown)}; known: {', '.join(sorted(OVERRIDES))}"
            )
        if config_file is None:
            config_file = self.env.get("PYFLARE_CONFIG", "").strip() or None
        if config_file is not None:
            self._read_file(Path(config_file))
        self._nested_env()
        for key, path in _WHOLE_KEYS.items():
            self._whole(path, self._env_value(f"PYFLARE_{key.upper()}"), f"PYFLARE_{key.upper()}")
        self._host(self._env_value("PYFLARE_HOST"), "PYFLARE_HOST")
        for key, path in _PORT_KEYS.items():
            self._port(path, self._env_value(f"PYFLARE_{key.upper()}"), f"PYFLARE_{key.upper()}")
        for key, path in _WHOLE_KEYS.items():
            self._whole(path, overrides.get(key), f"override {key}")
        self._host(overrides.get("host"), "override host")
        for key, path in _PORT_KEYS.items():
            self._port(path, overrides.get(key), f"override {key}")
        try:
            return ServerSettings.model_validate(self.data)
        except ValidationError as exc:
            raise ConfigError(
                "; ".join(self._describe(error) for error in exc.errors(include_url=False))
            ) from None

    # -- sources -------------------------------------------------------------

    def _read_file(self, path: Path) -> None:
        try:
            text = path.expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the config file {path}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"the config file {path} is not UTF-8 text: {exc}") from None
        try:
            loaded = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(
                f"the config file {path} is not valid YAML{where}: {problem}"
            ) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"the config file {path} must hold a mapping with collector: and server:, "
                f"got a {type(loaded).__name__}"
            )
        self.data = loaded
        self.file = str(path)
        if node is not None:
            _node_lines(node, (), self.file_lines)

    def _env_value(self, name: str) -> str | None:
        raw = self.env.get(name)
        return raw if raw is not None and raw.strip() else None

    def _nested_env(self) -> None:
        for name in sorted(self.env):
            if not name.startswith(_NESTED_PREFIXES):
                continue
            raw = self._env_value(name)
            if raw is None:
                continue
            path = tuple(part.lower() for part in name.removeprefix("PYFLARE_").split("__"))
            annotation = _annotation_at(path, name)
            self._set(path, _parse_env(annotation, raw, name), name)

    def _whole(self, path: KeyPath, value: Any, origin: str) -> None:
        if value is not None:
            self._set(path, value, origin)

    def _host(self, value: Any, origin: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value.strip() or value.strip() != value:
            raise ConfigError(f"{origin}={value!r} is not valid: expected a host name or address")
        for path in _HOST_KEYS:
            _, port = self._current_endpoint(path)
            self._set(path, _join_endpoint(value.strip("[]"), port), origin)

    def _port(self, path: KeyPath, value: Any, origin: str) -> None:
        if value is None:
            return
        try:
            port = _port(value)
        except ValueError as exc:
            raise ConfigError(f"{origin}={value!r} is not valid: {exc}") from None
        host, _ = self._current_endpoint(path)
        self._set(path, _join_endpoint(host, port), origin)

    def _current_endpoint(self, path: KeyPath) -> tuple[str, int]:
        node: Any = self.data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            node = _default_at(path)
        try:
            return split_endpoint(str(node))
        except ValueError as exc:
            raise ConfigError(
                f"{'.'.join(path)}: {exc}, got {node!r}{self._source(path)}"
            ) from None

    def _set(self, path: KeyPath, value: Any, origin: str) -> None:
        node = self.data
        for depth, key in enumerate(path[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(
                    f"{where}: must be a mapping, got {child!r}{self._source(path[: depth + 1])}"
                )
            node = child
        node[path[-1]] = value
        self.origins[path] = origin

    # -- errors --------------------------------------------------------------

    def _source(self, path: KeyPath) -> str:
        for end in range(len(path), 0, -1):
            origin = self.origins.get(path[:end])
            if origin is not None:
                return f" (from {origin})"
        inner = [origin for key, origin in self.origins.items() if key[: len(path)] == path]
        if inner:
            return f" (from {', '.join(sorted(set(inner)))})"
        for end in range(len(path), 0, -1):
            line = self.file_lines.get(path[:end])
            if line is not None:
                return f" ({self.file} line {line})"
        return f" (in {self.file})" if self.file else ""

    def _describe(self, error: Mapping[str, Any]) -> str:
        loc = tuple(error["loc"])
        text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        where = text.lstrip(".") or "settings"
        problem = _problem(error, loc)
        source = self._source(tuple(str(part) for part in loc))
        return f"{where}: {problem}{source}"


def _node_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    """Record the line of each key path in a composed YAML document."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                _node_lines(value, (*path, str(key.value)), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, (*path, str(index)), lines)


# -- the model's shape, for env variables and error messages ------------------


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``X | None`` and of ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _annotation_at(path: KeyPath, name: str) -> Any:
    model: Any = ServerSettings
    for depth, key in enumerate(path):
        if not _is_model(model):
            parent = ".".join(path[:depth])
            raise ConfigError(f"{name}: {parent} has no keys under it")
        fields = model.model_fields
        if key not in fields:
            where = ".".join(path[:depth]) or "the top level"
            raise ConfigError(
                f"{name}: unknown key {key!r} under {where}; expected one of {', '.join(fields)}"
            )
        model = _unwrap(fields[key].annotation)
    return model


def _default_at(path: KeyPath) -> Any:
    value: Any = ServerSettings()
    for key in path:
        value = getattr(value, key)
    return value


def _parse_env(annotation: Any, raw: str, name: str) -> Any:
    """A variable's text as the value for a key of type ``annotation``."""
    origin = typing.get_origin(annotation)
    structured = _is_model(annotation) or origin in (tuple, list, dict)
    if not structured:
        return raw.strip()
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid YAML: {exc}") from None
    if origin in (tuple, list) and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at ``loc`` (empty when not a model there)."""
    model: Any = ServerSettings
    for part in loc:
        if isinstance(part, int):
            args = typing.get_args(model)
            model = _unwrap(args[0]) if args else None
            continue
        if not _is_model(model) or part not in model.model_fields:
            return []
        model = _unwrap(model.model_fields[part].annotation)
    return list(model.model_fields) if _is_model(model) else []


_PROBLEMS = {
    "missing": "required",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _problem(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    got = "a mapping" if isinstance(value, Mapping) else _shown(value)
    if kind == "extra_forbidden":
        known = _keys_at(loc[:-1])
        return "unknown key" + (f"; expected one of {', '.join(known)}" if known else "")
    if kind == "missing":
        return "required"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {bound}, got {got}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got}"
    if kind == "value_error":
        problem = str(ctx.get("error"))
        return problem if isinstance(value, Mapping) else f"{problem}, got {got}"
    if kind in _PROBLEMS:
        return f"{_PROBLEMS[kind]}, got {got}"
    message = str(error.get("msg", kind))
    return f"{message[:1].lower()}{message[1:]}, got {got}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
