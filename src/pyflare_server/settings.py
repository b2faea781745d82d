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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from pyflare.config import store_path, store_url
from pyflare.errors import ConfigError
from pyflare.exporters.masking import SpanMasker
from pyflare.mlfields import stringify
from pyflare.tracing.masking import DETECTORS, PIIConfig, PIIMasker

if TYPE_CHECKING:
    from pyflare.cost.attribution import Attribution
    from pyflare.cost.budgets import Budget
    from pyflare.cost.prices import PriceBook

__all__ = [
    "DEFAULT_STORE",
    "ApiSettings",
    "AttributeMatch",
    "BatcherSettings",
    "CollectorSettings",
    "CorsSettings",
    "DriftSettings",
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


class DriftSettings(_Section):
    """Drift on the span stream: features and predictions per model, in fixed windows."""

    enabled: bool = True
    window_s: PositiveInt = 300
    min_sample_size: PositiveInt = 100
    # A model without an uploaded reference takes its first full window as one.
    auto_reference: bool = True


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


class CostSettings(_Section):
    """Pricing spans on their way to the store, and the server's budget rules."""

    enabled: bool = True
    # YAML of model prices and aliases (pyflare.cost.prices.PriceBook.from_yaml);
    # they win over the built-in catalogue.
    prices_file: NonEmpty | None = None
    # Attribute keys filling user/session/feature/team/environment and extra
    # dimensions (pyflare.cost.attribution.Attribution.from_mapping).
    attribution: dict[str, list[str]] = Field(default_factory=dict)
    # Budget rules (pyflare.cost.budgets.budgets_from_config), checked by
    # GET /api/v1/costs/budgets.
    budgets: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid_cost(self) -> CostSettings:
        try:
            self.attribution_rules()
            self.budget_rules()
            self.price_book()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def attribution_rules(self) -> Attribution:
        from pyflare.cost.attribution import Attribution

        return Attribution.from_mapping(self.attribution)

    def budget_rules(self) -> list[Budget]:
        from pyflare.cost.budgets import budgets_from_config

        return budgets_from_config(self.budgets, source="collector.cost.budgets")

    def price_book(self) -> PriceBook | None:
        """The user's price book, or None for the built-in catalogue."""
        if self.prices_file is None:
            return None
        from pyflare.cost.prices import PriceBook

        return PriceBook.from_yaml(self.prices_file)


class KafkaTopics(_Section):
    traces: NonEmpty = "pyflare.traces"
    metrics: NonEmpty = "pyflare.metrics"
    logs: NonEmpty = "pyflare.logs"
    alerts: NonEmpty = "pyflare.alerts"
    embeddings: NonEmpty = "pyflare.embeddings"
    dead_letter: NonEmpty = "pyflare.dead-letter"
    # Topics are created with these when missing, and checked when they exist.
    partitions: PositiveInt = 12
    replication_factor: PositiveInt = 3


class KafkaProducerSettings(_Section):
    compression: Annotated[
        Literal["none", "gzip", "snappy", "lz4", "zstd"], BeforeValidator(_lower)
    ] = "lz4"
    batch_size: PositiveInt = 16_384
    linger_ms: NonNegativeInt = 5
    acks: Annotated[Literal["0", "1", "all"], BeforeValidator(_acks)] = "all"


class KafkaConsumerSettings(_Section):
    """The workers of ``pyflare worker``: one consumer group."""

    group_id: NonEmpty = "pyflare-workers"
    max_batch_spans: PositiveInt = 10_000
    max_wait_ms: PositiveInt = 200
    session_timeout_ms: PositiveInt = 10_000


class KafkaSettings(_Section):
    """The scaled mode's queue: with brokers set, receivers produce and workers consume."""

    brokers: tuple[Endpoint, ...] = ()
    topics: KafkaTopics = KafkaTopics()
    producer: KafkaProducerSettings = KafkaProducerSettings()
    consumer: KafkaConsumerSettings = KafkaConsumerSettings()


class CollectorSettings(_Section):
    otlp: OtlpSettings = OtlpSettings()
    batcher: BatcherSettings = BatcherSettings()
    sampling: SamplingSettings = SamplingSettings()
    enricher: EnricherSettings = EnricherSettings()
    pii: PiiSettings = PiiSettings()
    drift: DriftSettings = DriftSettings()
    cost: CostSettings = CostSettings()
    kafka: KafkaSettings = KafkaSettings()


def _server_store(value: object) -> object:
    if not isinstance(value, str):
        return value
    # -- ClickHouse stores (pyflare_server.storage.factory opens them) --
    if value.strip().lower().startswith(("clickhouse://", "clickhouses://", "chdb://")):
        from pyflare_server.storage.urls import parse_store_url

        try:
            parse_store_url(value.strip(), setting="store")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()
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
    # POST /api/v1/query: the most rows one answer has, and the longest a query runs.
    max_query_rows: Annotated[int, Field(gt=0, le=10_000)] = 10_000
    query_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    # WebSocket /api/v1/ws: messages queued for one client before it is disconnected.
    ws_max_queue: PositiveInt = 1_000
    # Browsers allowed to call the API (CORS); credentials travel in headers, not cookies.
    cors: CorsSettings = CorsSettings()


class JwtSettings(_Section):
    """Bearer tokens signed by your identity provider (RS256)."""

    enabled: bool = False
    issuer: NonEmpty = "pyflare"
    audience: NonEmpty = "pyflare-api"
    algorithms: tuple[Literal["RS256", "RS384", "RS512"], ...] = ("RS256",)
    public_key_path: NonEmpty | None = None
    # The claim holding the role (admin, developer, viewer, operator).
    role_claim: NonEmpty = "role"
    leeway_s: NonNegativeInt = 30


class AuthSettings(_Section):
    """Who may call the API and the receivers (spec §7).

    ``enabled`` None means: on unless every listener is on a loopback address.
    Turning it off on a non-loopback address needs ``insecure: true``.
    """

    enabled: bool | None = None
    insecure: bool = False
    api_key_header: NonEmpty = "X-API-Key"
    jwt: JwtSettings = JwtSettings()


class RateLimitSettings(_Section):
    """A token bucket per API key (or client address without auth)."""

    enabled: bool = True
    requests_per_s: PositiveFloat = 50.0
    burst: PositiveInt = 100
    # redis://host:6379/0 shares the buckets between API replicas; in-process otherwise.
    redis_url: NonEmpty | None = None


LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def _server_vectors(value: object) -> object:
    """``duckdb`` (the span store's file) or a vector store URL (storage/urls.py)."""
    if not isinstance(value, str) or value.strip().lower() == "duckdb":
        return value.strip().lower() if isinstance(value, str) else value
    from pyflare_server.storage.urls import VECTOR_SCHEMES, url_problem

    problem = url_problem(value, VECTOR_SCHEMES)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


class ServerSection(_Section):
    store: Annotated[str, BeforeValidator(_server_store)] = DEFAULT_STORE
    # Where embeddings live: duckdb (the store's file), qdrant://host:6333 or
    # qdrant+local:///path; None keeps them in the span store's backend.
    vectors: Annotated[str, BeforeValidator(_server_vectors)] | None = None
    # The size of the embeddings kept there (1536: OpenAI text-embedding-3-small).
    vector_size: Annotated[int, Field(gt=0, le=65_536)] = 1536
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    log_level: Annotated[LogLevel, BeforeValidator(_lower)] = "info"


KeyPath = tuple[str, ...]


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
        from pyflare_server._settings_loader import Loader

        return Loader(env).load(config_file, dict(overrides or {}))
