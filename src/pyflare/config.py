"""PyFlare's settings: one table, one precedence.

Each setting resolves as: the argument given to :func:`pyflare.init` > its
``PYFLARE_*`` environment variable > the matching ``OTEL_*`` variable, if any >
the default. This is the only module that reads ``os.environ``.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pyflare.errors import ConfigError

__all__ = ["SETTINGS", "Setting", "Settings", "load_settings", "store_path", "store_url"]

CaptureMode = Literal["all", "inputs", "off"]
DEFAULT_STORE = "duckdb:///.pyflare/pyflare.duckdb"


class _Invalid(ValueError):
    """Raised by a parser with the accepted values as its message."""


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise _Invalid("true or false (also 1/0, yes/no, on/off)")


def _parse_str(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise _Invalid("a non-empty string")
    return value


def _parse_optional_str(raw: str) -> str | None:
    value = raw.strip()
    return value or None


def _positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _Invalid("a positive integer") from None
    if value <= 0:
        raise _Invalid("a positive integer")
    return value


def _sample_rate(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise _Invalid("a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise _Invalid("a number between 0 and 1")
    return value


def _capture(raw: str) -> CaptureMode:
    value = raw.strip().lower()
    if value in {"all", "inputs", "off"}:
        return value  # type: ignore[return-value]
    raise _Invalid("one of all, inputs, off")


def _key_values(raw: str) -> dict[str, str]:
    """Parse the OTel list form ``k1=v1,k2=v2`` (values percent-decoded)."""
    result: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _Invalid("comma-separated key=value pairs, e.g. 'a=1,b=2'")
        result[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return result


_STORE_FORMS = "duckdb:///path/to/file.duckdb, duckdb:///:memory:, a file path, or none"


def store_path(url: str) -> str:
    """The DuckDB database path a ``duckdb:///path`` URL names (``:memory:`` allowed).

    ``duckdb:///rel/file.duckdb`` is relative to the working directory,
    ``duckdb:////abs/file.duckdb`` absolute, ``duckdb:///:memory:`` in memory.

    Raises:
        ValueError: not such a URL; the message says what is wrong.
    """
    if not isinstance(url, str) or not url.startswith("duckdb://"):
        raise ValueError(f"not a DuckDB store URL: {url!r}; expected duckdb:///path/to/file.duckdb")
    # One leading slash separates the (empty) host from the path:
    # duckdb:///rel/path -> "rel/path"; duckdb:////abs/path -> "/abs/path".
    path = url.removeprefix("duckdb://").removeprefix("/")
    if not path:
        raise ValueError(f"store URL {url!r} names no file; expected duckdb:///path/to/file.duckdb")
    if path.endswith("/"):
        raise ValueError(
            f"store URL {url!r} names a directory; expected duckdb:///path/to/file.duckdb"
        )
    return path


def _store_url(raw: str) -> str | None:
    value = raw.strip()
    if value.lower() in {"none", "off"}:
        return "none"
    if not value:
        return None
    if value.startswith("duckdb://"):
        try:
            store_path(value)
        except ValueError:
            raise _Invalid(_STORE_FORMS) from None
        return value
    if "://" in value:
        raise _Invalid(_STORE_FORMS)
    return "duckdb:///" + value


def store_url(value: str, *, name: str = "store") -> str | None:
    """A store as the user wrote it (URL, bare path or ``none``) as a ``duckdb://`` URL.

    Returns ``"none"`` for no store and None for an empty string.

    Raises:
        ConfigError: not a form PyFlare accepts; the message names ``name``.
    """
    try:
        return _store_url(value)
    except _Invalid as exc:
        raise ConfigError(f"{name}={value!r} is not valid: expected {exc}") from None


def _endpoint(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise _Invalid("an http(s) URL such as http://localhost:4318")
    return value


def _otel_disabled(env: Mapping[str, str]) -> bool | None:
    """``enabled`` from OTEL_SDK_DISABLED, if set."""
    raw = env.get("OTEL_SDK_DISABLED", "")
    if not raw.strip():
        return None
    try:
        return not _parse_bool(raw)
    except _Invalid as exc:
        raise ConfigError(f"OTEL_SDK_DISABLED={raw!r} is not valid: expected {exc}") from None


def _otel_sample_rate(env: Mapping[str, str]) -> float | None:
    """Translate OTEL_TRACES_SAMPLER(+_ARG) into a sample rate, if set."""
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not sampler:
        return None
    if sampler in {"always_on", "parentbased_always_on"}:
        return 1.0
    if sampler in {"always_off", "parentbased_always_off"}:
        return 0.0
    if sampler in {"traceidratio", "parentbased_traceidratio"}:
        raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
        try:
            return _sample_rate(raw)
        except _Invalid as exc:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not valid: expected {exc}"
            ) from None
    raise ConfigError(
        f"OTEL_TRACES_SAMPLER={sampler!r} is not supported: expected one of always_on, "
        "always_off, traceidratio, parentbased_always_on, parentbased_always_off, "
        "parentbased_traceidratio"
    )


def _otel_traces_endpoint(env: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP endpoint from the OTel variables, validated.

    As the OTLP exporter spec says, the signal-specific variable is used as
    given and the base one gets ``/v1/traces`` appended (even after a path).
    """
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        raw = env.get(name, "")
        if not raw.strip():
            continue
        try:
            value = _endpoint(raw)
        except _Invalid as exc:
            raise ConfigError(f"{name}={raw!r} is not valid: expected {exc}") from None
        if value is not None and name == "OTEL_EXPORTER_OTLP_ENDPOINT":
            value = value.rstrip("/") + "/v1/traces"
        return value
    return None


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    description: str
    otel_env: tuple[str, ...] = ()
    otel: Callable[[Mapping[str, str]], Any] | None = None


# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("enabled", "PYFLARE_ENABLED", True, _parse_bool,
            "Turn PyFlare off entirely (no spans recorded); OTEL_SDK_DISABLED=true also does.",
            otel=_otel_disabled),
    Setting("service_name", "PYFLARE_SERVICE_NAME", "unknown_service", _parse_str,
            "service.name of every span.", otel_env=("OTEL_SERVICE_NAME",)),
    Setting("environment", "PYFLARE_ENVIRONMENT", None, _parse_optional_str,
            "deployment.environment.name resource attribute (prod, staging, …)."),
    Setting("resource_attributes", "PYFLARE_RESOURCE_ATTRIBUTES", {}, _key_values,
            "Extra resource attributes, k=v comma-separated.", otel_env=("OTEL_RESOURCE_ATTRIBUTES",)),
    Setting("endpoint", "PYFLARE_ENDPOINT", None, _endpoint,
            "OTLP/HTTP endpoint of a PyFlare server or Collector; unset means local mode.",
            otel=_otel_traces_endpoint),
    Setting("headers", "PYFLARE_HEADERS", {}, _key_values,
            "Headers sent with OTLP exports (e.g. x-api-key=…).",
            otel_env=("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")),
    Setting("store", "PYFLARE_STORE", None, _store_url,
            "Local span store: duckdb:///path, duckdb:///:memory:, or none. Default: "
            f"{DEFAULT_STORE} when no endpoint is set, none when one is."),
    Setting("sample_rate", "PYFLARE_SAMPLE_RATE", 1.0, _sample_rate,
            "Fraction of traces kept (head sampling, parent-based).", otel=_otel_sample_rate),
    Setting("capture", "PYFLARE_CAPTURE", "all", _capture,
            "Content capture: all (inputs and outputs), inputs, or off."),
    Setting("capture_max_chars", "PYFLARE_CAPTURE_MAX_CHARS", 1000, _positive_int,
            "Characters kept in input/output previews."),
    Setting("pii_masking", "PYFLARE_PII_MASKING", True, _parse_bool,
            "Mask PII (emails, phones, cards, SSNs, IPs, secrets) before storing or sending."),
    Setting("max_queue_size", "PYFLARE_MAX_QUEUE_SIZE", 65536, _positive_int,
            "Spans buffered for export before new ones are dropped (and counted).",
            otel_env=("OTEL_BSP_MAX_QUEUE_SIZE",)),
    Setting("export_batch_size", "PYFLARE_EXPORT_BATCH_SIZE", 8192, _positive_int,
            "Most spans written in one batch.", otel_env=("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",)),
    Setting("export_interval_ms", "PYFLARE_EXPORT_INTERVAL_MS", 500, _positive_int,
            "Longest a finished span waits before it is written.",
            otel_env=("OTEL_BSP_SCHEDULE_DELAY",)),
    Setting("export_timeout_ms", "PYFLARE_EXPORT_TIMEOUT_MS", 30000, _positive_int,
            "Longest one export may take (OTLP mode).", otel_env=("OTEL_BSP_EXPORT_TIMEOUT",)),
    Setting("thread_context", "PYFLARE_THREAD_CONTEXT", True, _parse_bool,
            "Carry PyFlare context and the current span into threads and thread pools."),
    Setting("prices_file", "PYFLARE_PRICES_FILE", None, _parse_optional_str,
            "YAML file of model prices and aliases; they win over the built-in catalogue "
            "(see pyflare.cost.prices.PriceBook.from_yaml)."),
)
# fmt: on

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`."""

    enabled: bool = True
    service_name: str = "unknown_service"
    environment: str | None = None
    resource_attributes: dict[str, str] = field(default_factory=dict)
    endpoint: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    store: str | None = None
    sample_rate: float = 1.0
    capture: CaptureMode = "all"
    capture_max_chars: int = 1000
    pii_masking: bool = True
    max_queue_size: int = 65536
    export_batch_size: int = 8192
    export_interval_ms: int = 500
    export_timeout_ms: int = 30000
    thread_context: bool = True
    prices_file: str | None = None

    @property
    def local_store(self) -> str | None:
        """The local store URL in effect, or None when spans are not stored locally."""
        if self.store == "none":
            return None
        if self.store is not None:
            return self.store
        return DEFAULT_STORE if self.endpoint is None else None

    @property
    def traces_endpoint(self) -> str | None:
        """The full OTLP/HTTP traces URL (``/v1/traces`` added when no path is given)."""
        if self.endpoint is None:
            return None
        parsed = urllib.parse.urlsplit(self.endpoint)
        if parsed.path in {"", "/"}:
            return self.endpoint.rstrip("/") + "/v1/traces"
        return self.endpoint


def _validate_argument(setting: Setting, value: Any) -> Any:
    """Check a value passed as an argument; strings go through the env parser."""
    name = setting.name
    if isinstance(value, str):
        try:
            return setting.parse(value)
        except _Invalid as exc:
            raise ConfigError(f"{name}={value!r} is not valid: expected {exc}") from None
    default = setting.default
    if isinstance(default, dict):
        if not (
            isinstance(value, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise ConfigError(f"{name} must be a mapping of strings to strings, got {value!r}")
        return dict(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
        return float(value)
    # Text settings (and optional ones: None means "not given"); strings were handled above.
    raise ConfigError(f"{name} must be a string, got {value!r}")


def load_settings(env: Mapping[str, str] | None = None, **arguments: Any) -> Settings:
    """Resolve every setting: argument > PYFLARE_* > OTEL_* > default.

    Raises:
        ConfigError: a value is not valid; the message names the argument or
            variable and the accepted values.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    unknown = set(arguments) - set(_BY_NAME)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {sorted(unknown)}; known settings: {sorted(_BY_NAME)}"
        )
    resolved: dict[str, Any] = {}
    for setting in SETTINGS:
        if arguments.get(setting.name) is not None:
            resolved[setting.name] = _validate_argument(setting, arguments[setting.name])
            continue
        raw = environ.get(setting.env)
        if raw is not None and raw.strip() != "":
            try:
                resolved[setting.name] = setting.parse(raw)
            except _Invalid as exc:
                raise ConfigError(f"{setting.env}={raw!r} is not valid: expected {exc}") from None
            continue
        otel_value = _from_otel(setting, environ)
        if otel_value is not None:
            resolved[setting.name] = otel_value
    return Settings(**resolved)


def _from_otel(setting: Setting, environ: Mapping[str, str]) -> Any:
    if setting.otel is not None:
        return setting.otel(environ)
    for name in setting.otel_env:
        raw = environ.get(name)
        if raw is not None and raw.strip() != "":
            try:
                return setting.parse(raw)
            except _Invalid as exc:
                raise ConfigError(f"{name}={raw!r} is not valid: expected {exc}") from None
    return None


def settings_table() -> str:
    """The settings table as Markdown (used by the docs)."""
    computed = {
        "sample_rate": "OTEL_TRACES_SAMPLER(_ARG)",
        "endpoint": "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT",
        "enabled": "OTEL_SDK_DISABLED",
    }
    lines = [
        "| setting | variable | OTel variable | default | description |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        otel = ", ".join(s.otel_env) or computed.get(s.name, "")
        lines.append(f"| {s.name} | {s.env} | {otel} | {s.default!r} | {s.description} |")
    return "\n".join(lines)


assert {f.name for f in fields(Settings)} == set(_BY_NAME), "settings table and Settings differ"
