"""Settings: one table, one precedence (argument > PYFLARE_* > OTEL_* > default),
and a ConfigError naming the argument or variable and what it accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pyflare.config import DEFAULT_STORE, SETTINGS, load_settings, settings_table, store_url
from pyflare.errors import ConfigError


@dataclass(frozen=True)
class Levels:
    """One setting given at every level, and what each level should resolve to."""

    name: str
    argument: Any
    pyflare: dict[str, str]
    otel: dict[str, str]
    from_argument: Any
    from_pyflare: Any
    from_otel: Any
    default: Any


WITH_OTEL_TWIN = [
    Levels("service_name", "arg", {"PYFLARE_SERVICE_NAME": "pf"},
           {"OTEL_SERVICE_NAME": "otel"}, "arg", "pf", "otel", "unknown_service"),
    Levels("resource_attributes", {"k": "arg"}, {"PYFLARE_RESOURCE_ATTRIBUTES": "k=pf"},
           {"OTEL_RESOURCE_ATTRIBUTES": "k=otel,b=%20x"}, {"k": "arg"}, {"k": "pf"},
           {"k": "otel", "b": " x"}, {}),
    Levels("endpoint", "http://arg:1", {"PYFLARE_ENDPOINT": "http://pf:2"},
           {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:3"}, "http://arg:1", "http://pf:2",
           "http://otel:3/v1/traces", None),
    Levels("headers", {"x-api-key": "arg"}, {"PYFLARE_HEADERS": "x-api-key=pf"},
           {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=otel"}, {"x-api-key": "arg"},
           {"x-api-key": "pf"}, {"x-api-key": "otel"}, {}),
    Levels("sample_rate", 0.25, {"PYFLARE_SAMPLE_RATE": "0.5"},
           {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.75"},
           0.25, 0.5, 0.75, 1.0),
    Levels("max_queue_size", 10, {"PYFLARE_MAX_QUEUE_SIZE": "20"},
           {"OTEL_BSP_MAX_QUEUE_SIZE": "30"}, 10, 20, 30, 65536),
    Levels("export_batch_size", 10, {"PYFLARE_EXPORT_BATCH_SIZE": "20"},
           {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "30"}, 10, 20, 30, 8192),
    Levels("export_interval_ms", 10, {"PYFLARE_EXPORT_INTERVAL_MS": "20"},
           {"OTEL_BSP_SCHEDULE_DELAY": "30"}, 10, 20, 30, 500),
    Levels("export_timeout_ms", 10, {"PYFLARE_EXPORT_TIMEOUT_MS": "20"},
           {"OTEL_BSP_EXPORT_TIMEOUT": "30"}, 10, 20, 30, 30000),
    Levels("enabled", False, {"PYFLARE_ENABLED": "yes"}, {"OTEL_SDK_DISABLED": "true"},
           False, True, False, True),
]  # fmt: skip

WITHOUT_OTEL_TWIN = [
    Levels("environment", "arg", {"PYFLARE_ENVIRONMENT": "pf"}, {}, "arg", "pf", None, None),
    Levels("store", "duckdb:///arg.duckdb", {"PYFLARE_STORE": "pf.duckdb"}, {},
           "duckdb:///arg.duckdb", "duckdb:///pf.duckdb", None, None),
    Levels("capture", "inputs", {"PYFLARE_CAPTURE": "OFF"}, {}, "inputs", "off", "all", "all"),
    Levels("capture_max_chars", 10, {"PYFLARE_CAPTURE_MAX_CHARS": "20"}, {}, 10, 20, 1000, 1000),
    Levels("pii_masking", False, {"PYFLARE_PII_MASKING": "0"}, {}, False, False, True, True),
    Levels("thread_context", False, {"PYFLARE_THREAD_CONTEXT": "off"}, {}, False, False, True,
           True),
    Levels("prices_file", "arg.yaml", {"PYFLARE_PRICES_FILE": "pf.yaml"}, {}, "arg.yaml",
           "pf.yaml", None, None),
]  # fmt: skip


@pytest.mark.parametrize("case", WITH_OTEL_TWIN + WITHOUT_OTEL_TWIN, ids=lambda c: c.name)
def test_precedence(case: Levels) -> None:
    everything = {**case.otel, **case.pyflare}
    argument = load_settings(env=everything, **{case.name: case.argument})
    assert getattr(argument, case.name) == case.from_argument
    assert getattr(load_settings(env=everything), case.name) == case.from_pyflare
    assert getattr(load_settings(env=case.otel), case.name) == case.from_otel
    assert getattr(load_settings(env={}), case.name) == case.default
    # An empty variable counts as unset.
    blank = {**dict.fromkeys(case.pyflare, " "), **case.otel}
    assert getattr(load_settings(env=blank), case.name) == case.from_otel


def test_every_setting_is_covered() -> None:
    assert {c.name for c in WITH_OTEL_TWIN + WITHOUT_OTEL_TWIN} == {s.name for s in SETTINGS}
    table = settings_table()
    for setting in SETTINGS:
        assert setting.env in table
        for name in setting.otel_env:
            assert name in table


@pytest.mark.parametrize(
    ("env", "sample_rate"),
    [
        ({"OTEL_TRACES_SAMPLER": "always_on"}, 1.0),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "traceidratio"}, 1.0),
    ],
)
def test_otel_samplers(env: dict[str, str], sample_rate: float) -> None:
    assert load_settings(env=env).sample_rate == sample_rate


def test_endpoints_and_stores() -> None:
    local = load_settings(env={})
    assert (local.local_store, local.traces_endpoint) == (DEFAULT_STORE, None)
    remote = load_settings(env={"PYFLARE_ENDPOINT": "https://pyflare.example.com/"})
    assert remote.local_store is None
    assert remote.traces_endpoint == "https://pyflare.example.com/v1/traces"
    custom_path = load_settings(endpoint="http://collector:4318/custom/traces", env={})
    assert custom_path.traces_endpoint == "http://collector:4318/custom/traces"
    both = load_settings(env={"PYFLARE_ENDPOINT": "http://h:4318", "PYFLARE_STORE": "a.duckdb"})
    assert (both.local_store, both.traces_endpoint) == (
        "duckdb:///a.duckdb",
        "http://h:4318/v1/traces",
    )
    assert load_settings(store="none", env={}).local_store is None
    assert load_settings(env={"PYFLARE_STORE": "off"}).local_store is None
    # OTel's rules: the signal's own variable is used as given and wins; the base
    # one gets /v1/traces appended, after a path too.
    otel = load_settings(
        env={
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://a:1/own/path",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:2",
        }
    )
    assert otel.traces_endpoint == "http://a:1/own/path"
    based = load_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:2/prefix/"})
    assert based.traces_endpoint == "http://b:2/prefix/v1/traces"
    headers = load_settings(
        env={
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=traces",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=base",
        }
    )
    assert headers.headers == {"a": "traces"}


def test_store_url_forms() -> None:
    assert store_url("duckdb:///x.duckdb") == "duckdb:///x.duckdb"
    assert store_url("/abs/x.duckdb") == "duckdb:////abs/x.duckdb"
    assert store_url("none") == "none"
    assert store_url("") is None
    with pytest.raises(ConfigError, match="store='duckdb://' is not valid"):
        store_url("duckdb://")


def _fragments(error: ConfigError, *expected: str) -> None:
    message = str(error)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PYFLARE_SAMPLE_RATE": "abc"}, ["PYFLARE_SAMPLE_RATE='abc'", "a number between 0 and 1"]),
        ({"PYFLARE_SAMPLE_RATE": "1.5"}, ["PYFLARE_SAMPLE_RATE='1.5'", "between 0 and 1"]),
        ({"PYFLARE_SAMPLE_RATE": "nan"}, ["PYFLARE_SAMPLE_RATE='nan'", "between 0 and 1"]),
        ({"PYFLARE_CAPTURE": "some"}, ["PYFLARE_CAPTURE='some'", "all, inputs, off"]),
        ({"PYFLARE_MAX_QUEUE_SIZE": "-1"}, ["PYFLARE_MAX_QUEUE_SIZE='-1'", "a positive integer"]),
        ({"PYFLARE_CAPTURE_MAX_CHARS": "ten"}, ["PYFLARE_CAPTURE_MAX_CHARS", "positive integer"]),
        ({"PYFLARE_ENDPOINT": "ftp://x"}, ["PYFLARE_ENDPOINT='ftp://x'", "an http(s) URL"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
         ["OTEL_EXPORTER_OTLP_ENDPOINT='localhost:4318'", "http(s) URL"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x"},
         ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='ftp://x'", "http(s) URL"]),
        ({"PYFLARE_HEADERS": "x-api-key"}, ["PYFLARE_HEADERS='x-api-key'", "key=value"]),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "=v"}, ["OTEL_EXPORTER_OTLP_HEADERS='=v'", "key=value"]),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, ["OTEL_RESOURCE_ATTRIBUTES='team'", "key=value"]),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"},
         ["OTEL_TRACES_SAMPLER='jaeger_remote'", "always_on", "parentbased_traceidratio"]),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
         ["OTEL_TRACES_SAMPLER_ARG='2'", "between 0 and 1"]),
        ({"PYFLARE_STORE": "postgres://db/x"}, ["PYFLARE_STORE='postgres://db/x'", "duckdb:///"]),
        ({"PYFLARE_STORE": "duckdb://"}, ["PYFLARE_STORE='duckdb://'", "duckdb:///path"]),
        ({"PYFLARE_ENABLED": "maybe"}, ["PYFLARE_ENABLED='maybe'", "true or false"]),
        ({"OTEL_SDK_DISABLED": "maybe"}, ["OTEL_SDK_DISABLED='maybe'", "true or false"]),
        ({"OTEL_BSP_SCHEDULE_DELAY": "soon"}, ["OTEL_BSP_SCHEDULE_DELAY='soon'", "positive"]),
        ({"PYFLARE_SERVICE_NAME": "   "}, []),  # blank is unset, not an error
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else None,
)  # fmt: skip
def test_bad_environment_values(env: dict[str, str], expected: list[str]) -> None:
    if not expected:
        assert load_settings(env=env).service_name == "unknown_service"
        return
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    _fragments(caught.value, *expected)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sample_rate": "abc"}, ["sample_rate='abc'", "a number between 0 and 1"]),
        ({"sample_rate": 1.5}, ["sample_rate", "between 0 and 1", "1.5"]),
        ({"sample_rate": True}, ["sample_rate", "between 0 and 1"]),
        ({"capture": "some"}, ["capture='some'", "all, inputs, off"]),
        ({"max_queue_size": -1}, ["max_queue_size", "positive integer"]),
        ({"max_queue_size": 1.5}, ["max_queue_size", "positive integer"]),
        ({"export_batch_size": True}, ["export_batch_size", "positive integer"]),
        ({"endpoint": "ftp://x"}, ["endpoint='ftp://x'", "http(s) URL"]),
        ({"endpoint": 4318}, ["endpoint must be a string"]),
        ({"headers": {"x-api-key": 1}}, ["headers", "mapping of strings to strings"]),
        ({"headers": ["x-api-key"]}, ["headers", "mapping of strings to strings"]),
        ({"headers": "x-api-key"}, ["headers='x-api-key'", "key=value"]),
        ({"store": "postgres://db"}, ["store='postgres://db'", "duckdb:///"]),
        ({"store": 5}, ["store must be a string"]),
        ({"service_name": ""}, ["service_name=''", "non-empty"]),
        ({"service_name": 5}, ["service_name must be a string"]),
        ({"environment": 5}, ["environment must be a string"]),
        ({"enabled": "maybe"}, ["enabled='maybe'", "true or false"]),
        ({"pii_masking": 1}, ["pii_masking must be True or False"]),
        ({"colour": "blue"}, ["unknown setting(s) ['colour']", "sample_rate", "service_name"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else None,
)
def test_bad_arguments(kwargs: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={}, **kwargs)
    _fragments(caught.value, *expected)


def test_arguments_accept_strings_as_the_environment_does() -> None:
    settings = load_settings(
        env={}, sample_rate="0.5", max_queue_size="7", enabled="off", headers="a=1,b=2"
    )
    assert settings.sample_rate == 0.5
    assert settings.max_queue_size == 7
    assert settings.enabled is False
    assert settings.headers == {"a": "1", "b": "2"}
    assert load_settings(env={}, sample_rate=1).sample_rate == 1.0


def test_bad_values_at_init_change_nothing(run_python) -> None:
    child = run_python(
        """
        import json, os
        import pyflare

        pyflare.init(service_name="first", store="duckdb:///cfg.duckdb")

        @pyflare.trace
        def work() -> int:
            return 1

        work()
        errors = {}
        attempts = {
            "argument": lambda: pyflare.init(sample_rate="abc"),
            "keyword": lambda: pyflare.init(colour="blue"),
            "pii": lambda: pyflare.init(pii="yes"),
            "provider": lambda: pyflare.init(tracer_provider=object()),
        }
        for label, attempt in attempts.items():
            try:
                attempt()
            except pyflare.ConfigError as exc:
                errors[label] = str(exc)
        os.environ["PYFLARE_SAMPLE_RATE"] = "abc"
        try:
            pyflare.init()
        except pyflare.ConfigError as exc:
            errors["environment"] = str(exc)
        del os.environ["PYFLARE_SAMPLE_RATE"]
        work()
        pyflare.flush()
        stats = pyflare.stats()
        stored = len(pyflare.traces())
        # OTEL_SDK_DISABLED turns PyFlare off: a no-op provider, nothing recorded.
        os.environ["OTEL_SDK_DISABLED"] = "true"
        disabled = type(pyflare.init()).__name__
        work()
        print("RESULT", json.dumps({
            "errors": errors, "stats": stats, "stored": stored,
            "disabled": disabled, "disabled_stats": pyflare.stats(),
        }))
        """
    )
    result = run_python.result(child.stdout)
    errors = result["errors"]
    assert set(errors) == {"argument", "keyword", "pii", "provider", "environment"}
    assert "sample_rate='abc'" in errors["argument"]
    assert "between 0 and 1" in errors["argument"]
    assert "colour" in errors["keyword"]
    assert "PIIConfig" in errors["pii"]
    assert "TracerProvider" in errors["provider"]
    assert "PYFLARE_SAMPLE_RATE='abc'" in errors["environment"]
    # The first init() is still in charge and recording.
    assert result["stats"]["store"] == "duckdb:///cfg.duckdb"
    assert (result["stats"]["exported"], result["stats"]["dropped"]) == (2, 0)
    assert result["stored"] == 2
    assert result["disabled"] == "NoOpTracerProvider"
    assert result["disabled_stats"] == {"active": False}
    assert child.stderr == ""


def test_readme_settings_table_is_current() -> None:
    from pathlib import Path

    from pyflare.config import settings_table

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- settings-table")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- /settings-table -->")
    assert readme[start:end].strip() == settings_table().strip(), (
        "README's settings table is out of date: paste pyflare.config.settings_table()"
    )
