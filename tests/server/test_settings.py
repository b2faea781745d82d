"""Server settings: the collector.yaml shape, precedence, and every error message."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest

from pyflare.errors import ConfigError
from pyflare_server.settings import (
    DEFAULT_STORE,
    SamplingRule,
    ServerSettings,
    split_endpoint,
)

# The spec's collector.yaml, as written there (with a server: section added).
SPEC_YAML = """
collector:
  # OTLP receiver configuration
  otlp:
    grpc:
      endpoint: "0.0.0.0:4317"
      max_recv_msg_size_mib: 16
      max_concurrent_streams: 100
    http:
      endpoint: "0.0.0.0:4318"
      cors:
        allowed_origins: ["*"]
  # Batching configuration
  batcher:
    max_batch_size: 1000
    timeout_ms: 100
    max_queue_size: 10000
  # Sampling configuration
  sampling:
    default_rate: 1.0  # 100% sampling by default
    rules:
      - service: "high-volume-service"
        rate: 0.1  # 10% sampling
      - attribute:
          key: "priority"
          value: "high"
        rate: 1.0  # Always sample high priority
  # Kafka exporter configuration
  kafka:
    brokers:
      - "kafka-1:9092"
      - "kafka-2:9092"
      - "kafka-3:9092"
    topics:
      traces: "pyflare.traces"
      metrics: "pyflare.metrics"
      logs: "pyflare.logs"
    producer:
      compression: "lz4"
      batch_size: 16384
      linger_ms: 5
      acks: "all"
server:
  store: "duckdb:///data/server.duckdb"
"""


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(
    tmp_path: Path,
    yaml_text: str | None = None,
    *,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> ServerSettings:
    config = write_yaml(tmp_path, yaml_text) if yaml_text is not None else None
    return ServerSettings.load(config, env=env or {}, overrides=overrides)


def error_of(tmp_path: Path, yaml_text: str | None = None, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, yaml_text, **kwargs)
    return str(info.value)


# -- what a user gets ----------------------------------------------------------


def test_defaults_are_the_specs() -> None:
    settings = ServerSettings.load(env={})
    assert settings.otlp_grpc_endpoint == "0.0.0.0:4317"
    assert settings.otlp_http_endpoint == "0.0.0.0:4318"
    assert settings.api_endpoint == "0.0.0.0:8080"
    assert (settings.otlp_http_host, settings.otlp_http_port) == ("0.0.0.0", 4318)
    assert (settings.otlp_grpc_host, settings.otlp_grpc_port) == ("0.0.0.0", 4317)
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8080)
    collector = settings.collector
    assert collector.otlp.grpc.max_recv_msg_size_mib == 16
    assert collector.otlp.grpc.max_concurrent_streams == 100
    assert collector.otlp.http.cors.allowed_origins == ("*",)
    assert collector.otlp.http.max_body_mib == 16
    assert collector.otlp.http.read_timeout_s == 10.0
    batcher = collector.batcher
    assert (batcher.max_batch_size, batcher.timeout_ms, batcher.max_queue_size) == (
        1000,
        100,
        10000,
    )
    assert collector.sampling.default_rate == 1.0
    (rule,) = collector.sampling.rules
    assert rule.attribute is not None
    assert (rule.attribute.key, rule.attribute.value, rule.rate) == ("priority", "high", 1.0)
    assert collector.enricher.host == socket.gethostname()
    assert collector.enricher.environment is None
    assert collector.enricher.version is None
    assert collector.pii.enabled is True
    assert collector.kafka.topics.traces == "pyflare.traces"
    assert settings.server.store == DEFAULT_STORE == "duckdb:///./.pyflare/server.duckdb"
    assert settings.store_path == "./.pyflare/server.duckdb"
    assert settings.server.log_level == "info"


def test_the_specs_collector_yaml_loads(tmp_path: Path) -> None:
    settings = load(tmp_path, SPEC_YAML)
    rules = settings.collector.sampling.rules
    assert [(r.service, r.rate) for r in rules] == [("high-volume-service", 0.1), (None, 1.0)]
    assert settings.collector.kafka.brokers == ("kafka-1:9092", "kafka-2:9092", "kafka-3:9092")
    assert settings.collector.kafka.producer.acks == "all"
    assert settings.server.store == "duckdb:///data/server.duckdb"
    assert settings.store_path == "data/server.duckdb"


def test_an_empty_file_or_section_means_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == ServerSettings.load(env={})
    settings = load(tmp_path, "collector:\n  batcher:\n")
    assert settings.collector.batcher.max_batch_size == 1000


def test_settings_are_frozen() -> None:
    settings = ServerSettings.load(env={})
    with pytest.raises(pydantic.ValidationError):
        settings.collector.batcher.max_batch_size = 5  # type: ignore[misc]


# -- precedence: overrides > PYFLARE_* > YAML > defaults --------------------------


def test_precedence_for_a_port(tmp_path: Path) -> None:
    yaml_text = "collector:\n  otlp:\n    http:\n      endpoint: 10.0.0.1:5000\n"
    assert load(tmp_path, yaml_text).otlp_http_endpoint == "10.0.0.1:5000"
    env = {"PYFLARE_OTLP_HTTP_PORT": "6000"}
    assert load(tmp_path, yaml_text, env=env).otlp_http_endpoint == "10.0.0.1:6000"
    assert (
        load(tmp_path, yaml_text, env=env, otlp_http_port=7000).otlp_http_endpoint
        == "10.0.0.1:7000"
    )


def test_host_sets_every_endpoint_and_keeps_their_ports(tmp_path: Path) -> None:
    yaml_text = "server:\n  api:\n    endpoint: 0.0.0.0:9999\n"
    settings = load(tmp_path, yaml_text, env={"PYFLARE_HOST": "127.0.0.1"})
    assert settings.otlp_grpc_endpoint == "127.0.0.1:4317"
    assert settings.otlp_http_endpoint == "127.0.0.1:4318"
    assert settings.api_endpoint == "127.0.0.1:9999"
    settings = load(tmp_path, yaml_text, env={"PYFLARE_HOST": "127.0.0.1"}, host="::1")
    assert settings.api_endpoint == "[::1]:9999"
    assert settings.api_host == "::1"


def test_every_named_variable(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={
            "PYFLARE_STORE": str(tmp_path / "s.duckdb"),
            "PYFLARE_OTLP_GRPC_PORT": "14317",
            "PYFLARE_OTLP_HTTP_PORT": "14318",
            "PYFLARE_API_PORT": "0",
            "PYFLARE_LOG_LEVEL": "DEBUG",
        },
    )
    assert settings.server.store == f"duckdb:///{tmp_path / 's.duckdb'}"
    assert settings.store_path == str(tmp_path / "s.duckdb")
    assert (settings.otlp_grpc_port, settings.otlp_http_port, settings.api_port) == (
        14317,
        14318,
        0,
    )
    assert settings.server.log_level == "debug"


def test_every_override(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={"PYFLARE_STORE": "env.duckdb", "PYFLARE_LOG_LEVEL": "error"},
        store="duckdb:///:memory:",
        host="localhost",
        otlp_http_port="1",
        otlp_grpc_port=2,
        api_port=3,
        log_level="warning",
    )
    assert settings.server.store == "duckdb:///:memory:"
    assert settings.otlp_http_endpoint == "localhost:1"
    assert settings.otlp_grpc_endpoint == "localhost:2"
    assert settings.api_endpoint == "localhost:3"
    assert settings.server.log_level == "warning"


def test_none_overrides_are_not_given(tmp_path: Path) -> None:
    settings = load(tmp_path, env={"PYFLARE_API_PORT": "9000"}, api_port=None, store=None)
    assert settings.api_port == 9000
    assert settings.server.store == DEFAULT_STORE


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "collector:\n  batcher:\n    max_batch_size: 7\n")
    settings = ServerSettings.load(env={"PYFLARE_CONFIG": str(path)})
    assert settings.collector.batcher.max_batch_size == 7
    other = tmp_path / "other.yaml"
    other.write_text("collector:\n  batcher:\n    max_batch_size: 8\n", encoding="utf-8")
    # An explicit file (the --config flag) wins over the variable.
    settings = ServerSettings.load(other, env={"PYFLARE_CONFIG": str(path)})
    assert settings.collector.batcher.max_batch_size == 8


def test_any_key_from_a_nested_variable(tmp_path: Path) -> None:
    yaml_text = "collector:\n  batcher:\n    max_batch_size: 10\n    timeout_ms: 5\n"
    settings = load(
        tmp_path,
        yaml_text,
        env={
            "PYFLARE_COLLECTOR__BATCHER__MAX_BATCH_SIZE": "20",
            "PYFLARE_COLLECTOR__OTLP__HTTP__CORS__ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "PYFLARE_COLLECTOR__KAFKA__BROKERS": "[k1:9092, k2:9092]",
            "PYFLARE_COLLECTOR__SAMPLING__RULES": "[{service: noisy, rate: 0.25}]",
            "PYFLARE_COLLECTOR__ENRICHER__ENVIRONMENT": "prod",
            "PYFLARE_COLLECTOR__PII__ENABLED": "false",
            "PYFLARE_SERVER__API__ENDPOINT": "127.0.0.1:8081",
        },
    )
    assert settings.collector.batcher.max_batch_size == 20
    assert settings.collector.batcher.timeout_ms == 5  # the rest of the file's section stays
    assert settings.collector.otlp.http.cors.allowed_origins == (
        "https://a.example",
        "https://b.example",
    )
    assert settings.collector.kafka.brokers == ("k1:9092", "k2:9092")
    assert settings.collector.sampling.rules == (SamplingRule(service="noisy", rate=0.25),)
    assert settings.collector.enricher.environment == "prod"
    assert settings.collector.pii.enabled is False
    assert settings.api_endpoint == "127.0.0.1:8081"


def test_empty_variables_and_the_sdks_variables_are_ignored(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={
            "PYFLARE_COLLECTOR__BATCHER__MAX_BATCH_SIZE": "  ",
            "PYFLARE_API_PORT": "",
            "PYFLARE_SERVICE_NAME": "my-app",
            "PYFLARE_SAMPLE_RATE": "0.5",
        },
    )
    assert settings == ServerSettings.load(env={})


# -- value forms ------------------------------------------------------------------


def test_attribute_rule_values_compare_as_stored(tmp_path: Path) -> None:
    yaml_text = """
    collector:
      sampling:
        rules:
          - attribute: {key: debug, value: true}
            rate: 0
          - attribute: {key: tier, value: 3}
            service: api
            rate: 0.5
    """
    rules = load(tmp_path, yaml_text).collector.sampling.rules
    assert [r.attribute.value for r in rules if r.attribute] == ["true", "3"]
    assert rules[1].service == "api"


@pytest.mark.parametrize(
    ("given", "expected"), [("all", "all"), (1, "1"), (0, "0"), (-1, "all"), ("ALL", "all")]
)
def test_kafka_acks(tmp_path: Path, given: object, expected: str) -> None:
    yaml_text = f"collector:\n  kafka:\n    producer:\n      acks: {given!r}\n"
    assert load(tmp_path, yaml_text).collector.kafka.producer.acks == expected


@pytest.mark.parametrize(
    ("endpoint", "host", "port"),
    [
        ("0.0.0.0:4318", "0.0.0.0", 4318),
        ("localhost:0", "localhost", 0),
        ("[::]:4318", "::", 4318),
        (":4318", "0.0.0.0", 4318),
        (" 127.0.0.1:80 ", "127.0.0.1", 80),
    ],
)
def test_split_endpoint(endpoint: str, host: str, port: int) -> None:
    assert split_endpoint(endpoint) == (host, port)


def test_store_forms(tmp_path: Path) -> None:
    assert load(tmp_path, store="plain.duckdb").server.store == "duckdb:///plain.duckdb"
    assert load(tmp_path, store="duckdb:////abs/x.duckdb").store_path == "/abs/x.duckdb"


def test_pii_masker_follows_the_settings(tmp_path: Path) -> None:
    settings = load(tmp_path, "collector:\n  pii:\n    pattern_actions: {email: redact}\n")
    masker = settings.collector.pii.span_masker()
    assert masker is not None
    attributes = {"gen_ai.prompt": "mail bob@example.com now"}
    masker.mask_in_place(attributes)
    assert attributes == {"gen_ai.prompt": "mail  now"}
    assert (
        load(tmp_path, "collector:\n  pii:\n    enabled: false\n").collector.pii.span_masker()
        is None
    )


# -- errors name the key, the problem and the source --------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "collector:\n  batcher:\n    max_batch_size: -1\n",
            "collector.batcher.max_batch_size: must be > 0, got -1 ({file} line 3)",
        ),
        (
            "collector:\n  batcher:\n    timeout_ms: -5\n",
            "collector.batcher.timeout_ms: must be >= 0, got -5 ({file} line 3)",
        ),
        (
            "collector:\n  batcher:\n    max_batch_size: lots\n",
            "collector.batcher.max_batch_size: must be an integer, got 'lots'",
        ),
        (
            "collector:\n  batcher:\n    max_batch_size: 1.5\n",
            "collector.batcher.max_batch_size: must be a whole number, got 1.5",
        ),
        (
            "collector:\n  batcher:\n    bogus: 1\n",
            "collector.batcher.bogus: unknown key; expected one of max_batch_size, timeout_ms, "
            "max_queue_size ({file} line 3)",
        ),
        (
            "collectors: {}\n",
            "collectors: unknown key; expected one of collector, server ({file} line 1)",
        ),
        ("collector: 5\n", "collector: must be a mapping, got 5"),
        (
            "collector:\n  sampling:\n    default_rate: 1.5\n",
            "collector.sampling.default_rate: must be <= 1.0, got 1.5",
        ),
        (
            "collector:\n  sampling:\n    default_rate: half\n",
            "collector.sampling.default_rate: must be a number, got 'half'",
        ),
        (
            "collector:\n  sampling:\n    rules:\n      - service: a\n        rate: 0.1\n"
            "      - service: b\n        rate: -0.1\n",
            "collector.sampling.rules[1].rate: must be >= 0.0, got -0.1 ({file} line 7)",
        ),
        (
            "collector:\n  sampling:\n    rules:\n      - rate: 0.5\n",
            "collector.sampling.rules[0]: a rule needs a service, an attribute {key, value}, "
            "or both ({file} line 4)",
        ),
        (
            "collector:\n  sampling:\n    rules:\n      - service: a\n",
            "collector.sampling.rules[0].rate: required",
        ),
        (
            "collector:\n  sampling:\n    rules:\n      - attribute: {key: priority}\n        rate: 1\n",
            "collector.sampling.rules[0].attribute.value: required",
        ),
        (
            "collector:\n  sampling:\n    rules: {service: a}\n",
            "collector.sampling.rules: must be a list, got a mapping",
        ),
        (
            "collector:\n  otlp:\n    http:\n      endpoint: localhost\n",
            "collector.otlp.http.endpoint: expected host:port, such as 0.0.0.0:4318, "
            "got 'localhost' ({file} line 4)",
        ),
        (
            "collector:\n  otlp:\n    grpc:\n      endpoint: 0.0.0.0:70000\n",
            "collector.otlp.grpc.endpoint: expected a port number from 0 to 65535, "
            "got '0.0.0.0:70000'",
        ),
        (
            "collector:\n  otlp:\n    grpc:\n      endpoint: '::1:4317'\n",
            "collector.otlp.grpc.endpoint: expected host:port with an IPv6 host in brackets",
        ),
        (
            "collector:\n  otlp:\n    http:\n      max_body_mib: 0\n",
            "collector.otlp.http.max_body_mib: must be > 0, got 0",
        ),
        (
            "collector:\n  otlp:\n    http:\n      cors:\n        allowed_origins: 5\n",
            "collector.otlp.http.cors.allowed_origins: must be a list, got 5",
        ),
        (
            "collector:\n  enricher:\n    host: ''\n",
            "collector.enricher.host: must not be empty, got ''",
        ),
        (
            "collector:\n  pii:\n    detectors: [email, passport]\n",
            "collector.pii: unknown PII detector 'passport'",
        ),
        (
            "collector:\n  pii:\n    default_action: shred\n",
            "collector.pii: default_action",
        ),
        (
            "collector:\n  pii:\n    enabled: maybe\n",
            "collector.pii.enabled: must be true or false, got 'maybe'",
        ),
        (
            "collector:\n  kafka:\n    producer:\n      compression: brotli\n",
            "collector.kafka.producer.compression: must be one of 'none', 'gzip', 'snappy', "
            "'lz4' or 'zstd', got 'brotli'",
        ),
        (
            "collector:\n  kafka:\n    producer:\n      acks: 2\n",
            "collector.kafka.producer.acks: must be one of '0', '1' or 'all', got '2'",
        ),
        (
            "collector:\n  kafka:\n    brokers: [kafka-1]\n",
            "collector.kafka.brokers[0]: expected host:port",
        ),
        (
            "server:\n  store: http://example.com/db\n",
            "server.store: expected duckdb:///path/to/file.duckdb, duckdb:///:memory: or a file "
            "path, got 'http://example.com/db'",
        ),
        (
            "server:\n  store: none\n",
            "server.store: the server needs a store: duckdb:///path/to/file.duckdb, got 'none'",
        ),
        (
            "server:\n  log_level: loud\n",
            "server.log_level: must be one of 'critical', 'error', 'warning', 'info' or 'debug', "
            "got 'loud'",
        ),
    ],
)
def test_bad_values_in_the_file(tmp_path: Path, yaml_text: str, message: str) -> None:
    error = error_of(tmp_path, yaml_text)
    assert message.replace("{file}", str(tmp_path / "collector.yaml")) in error


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        "collector:\n  batcher:\n    max_batch_size: 0\n    max_queue_size: 0\n",
    )
    assert "collector.batcher.max_batch_size: must be > 0" in error
    assert "collector.batcher.max_queue_size: must be > 0" in error


def test_config_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        load(tmp_path, "collector:\n  batcher:\n    max_batch_size: 0\n")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "collector:\n  batcher: [\n",
            "the config file {file} is not valid YAML at line 3, column 1",
        ),
        (
            "collector:\n  batcher:\n    a: 1\n   b: 2\n",
            "the config file {file} is not valid YAML at line 4",
        ),
        ("- collector\n", "the config file {file} must hold a mapping with collector: and "),
        ("just text\n", "must hold a mapping with collector: and server:, got a str"),
    ],
)
def test_bad_files(tmp_path: Path, yaml_text: str, message: str) -> None:
    assert message.replace("{file}", str(tmp_path / "collector.yaml")) in error_of(
        tmp_path, yaml_text
    )


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the config file .*nope\.yaml"):
        ServerSettings.load(tmp_path / "nope.yaml", env={})


def test_a_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00collector")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        ServerSettings.load(path, env={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PYFLARE_COLLECTOR__BATCHER__MAX_BATCH_SIZE": "-1"},
            "collector.batcher.max_batch_size: must be > 0, got '-1' "
            "(from PYFLARE_COLLECTOR__BATCHER__MAX_BATCH_SIZE)",
        ),
        (
            {"PYFLARE_COLLECTOR__BATCHER__BOGUS": "1"},
            "PYFLARE_COLLECTOR__BATCHER__BOGUS: unknown key 'bogus' under collector.batcher; "
            "expected one of max_batch_size, timeout_ms, max_queue_size",
        ),
        (
            {"PYFLARE_COLLECTOR__NOPE": "1"},
            "PYFLARE_COLLECTOR__NOPE: unknown key 'nope' under collector; expected one of otlp, "
            "batcher, sampling, enricher, pii, drift, cost, kafka",
        ),
        (
            {"PYFLARE_COLLECTOR__BATCHER__MAX_BATCH_SIZE__X": "1"},
            "PYFLARE_COLLECTOR__BATCHER__MAX_BATCH_SIZE__X: collector.batcher.max_batch_size "
            "has no keys under it",
        ),
        (
            {"PYFLARE_COLLECTOR__SAMPLING__RULES": "[{service: a"},
            "PYFLARE_COLLECTOR__SAMPLING__RULES='[{service: a' is not valid YAML",
        ),
        (
            {"PYFLARE_COLLECTOR__PII__DETECTORS": "email,passport"},
            "collector.pii: unknown PII detector 'passport'; accepted: email, phone, "
            "credit_card, ssn, ip_address, secret (from PYFLARE_COLLECTOR__PII__DETECTORS)",
        ),
        (
            {"PYFLARE_API_PORT": "http"},
            "PYFLARE_API_PORT='http' is not valid: expected a port number from 0 to 65535",
        ),
        (
            {"PYFLARE_OTLP_GRPC_PORT": "65536"},
            "PYFLARE_OTLP_GRPC_PORT='65536' is not valid: expected a port number",
        ),
        (
            {"PYFLARE_STORE": "s3://bucket/x"},
            "server.store: expected duckdb:///path/to/file.duckdb, duckdb:///:memory: or a file "
            "path, got 's3://bucket/x' (from PYFLARE_STORE)",
        ),
        (
            {"PYFLARE_LOG_LEVEL": "chatty"},
            "server.log_level: must be one of 'critical', 'error', 'warning', 'info' or 'debug', "
            "got 'chatty' (from PYFLARE_LOG_LEVEL)",
        ),
        (
            {"PYFLARE_HOST": " spaced "},
            "PYFLARE_HOST=' spaced ' is not valid: expected a host name or address",
        ),
        (
            {"PYFLARE_CONFIG": "/nonexistent/pyflare.yaml"},
            "cannot read the config file /nonexistent/pyflare.yaml",
        ),
    ],
)
def test_bad_variables(tmp_path: Path, env: dict[str, str], message: str) -> None:
    assert message in error_of(tmp_path, env=env)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"otlp_port": 1},
            "unknown override(s) ['otlp_port']; known: api_port, host, log_level, "
            "otlp_grpc_port, otlp_http_port, store",
        ),
        ({"api_port": -1}, "override api_port=-1 is not valid: expected a port number"),
        ({"api_port": True}, "override api_port=True is not valid: expected a port number"),
        ({"host": ""}, "override host='' is not valid: expected a host name or address"),
        ({"host": 5}, "override host=5 is not valid: expected a host name or address"),
        (
            {"store": "none"},
            "server.store: the server needs a store: duckdb:///path/to/file.duckdb, got 'none' "
            "(from override store)",
        ),
    ],
)
def test_bad_overrides(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    assert message in error_of(tmp_path, **overrides)


def test_a_port_for_a_bad_endpoint_names_the_endpoint(tmp_path: Path) -> None:
    error = error_of(
        tmp_path, "collector:\n  otlp:\n    http:\n      endpoint: nowhere\n", otlp_http_port=5
    )
    assert error.startswith("collector.otlp.http.endpoint: expected host:port")
    assert "got 'nowhere'" in error
    assert "line 4" in error


@pytest.mark.parametrize("store", ["clickhouse://bob:s3cret@:8123/x", "ftp://bob:s3cret@host/x"])
def test_a_password_in_a_bad_url_is_never_shown(tmp_path: Path, store: str) -> None:
    error = error_of(tmp_path, store=store)
    assert "s3cret" not in error
    assert "server.store" in error
