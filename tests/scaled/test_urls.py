"""Backend URLs: every form the server accepts, and a clear error for every other."""

from __future__ import annotations

import pytest

from pyflare.errors import ConfigError
from pyflare_server.storage.urls import (
    BackendURL,
    ChdbURL,
    ClickHouseURL,
    DuckDBURL,
    KafkaURL,
    QdrantLocalURL,
    QdrantURL,
    parse_backend_url,
    parse_queue_url,
    parse_store_url,
    parse_vectors_url,
)

GOOD: list[tuple[str, BackendURL]] = [
    ("duckdb:///rel/file.duckdb", DuckDBURL(path="rel/file.duckdb")),
    ("duckdb:////abs/file.duckdb", DuckDBURL(path="/abs/file.duckdb")),
    ("duckdb:///:memory:", DuckDBURL(path=":memory:")),
    ("DuckDB:///x.duckdb", DuckDBURL(path="x.duckdb")),
    ("  duckdb:///x.duckdb  ", DuckDBURL(path="x.duckdb")),
    (
        "clickhouse://user:pass@host:8123/pyflare",
        ClickHouseURL(host="host", port=8123, username="user", password="pass", database="pyflare"),
    ),
    ("clickhouse://ch.internal", ClickHouseURL(host="ch.internal")),
    ("clickhouse://ch:9123/", ClickHouseURL(host="ch", port=9123)),
    ("clickhouse://u@ch/analytics", ClickHouseURL(host="ch", username="u", database="analytics")),
    (
        "clickhouse://u%40corp:p%3Aw%2Fd@10.0.0.5:8123/pyflare",
        ClickHouseURL(host="10.0.0.5", username="u@corp", password="p:w/d"),
    ),
    ("clickhouse://[::1]:8123/db", ClickHouseURL(host="::1", database="db")),
    ("clickhouses://ch", ClickHouseURL(host="ch", port=8443, secure=True)),
    ("clickhouse://ch?secure=true", ClickHouseURL(host="ch", port=8443, secure=True)),
    ("clickhouse://ch:8123?secure=0", ClickHouseURL(host="ch")),
    ("chdb:///data/ch", ChdbURL(path="data/ch")),
    ("chdb:////var/lib/ch/", ChdbURL(path="/var/lib/ch")),
    ("chdb:///data/ch?database=other", ChdbURL(path="data/ch", database="other")),
    ("kafka://k1:9092,k2:9093", KafkaURL(brokers=("k1:9092", "k2:9093"))),
    ("kafka://k1", KafkaURL(brokers=("k1:9092",))),
    ("kafka://k1,k1:9092, k2 /", KafkaURL(brokers=("k1:9092", "k2:9092"))),
    ("kafka://[::1]:9092,[fe80::1]", KafkaURL(brokers=("[::1]:9092", "[fe80::1]:9092"))),
    ("qdrant://qdrant:6333", QdrantURL(host="qdrant")),
    ("qdrant://qdrant", QdrantURL(host="qdrant")),
    ("qdrant://qdrant:7000/", QdrantURL(host="qdrant", port=7000)),
    ("qdrants://q.example.com", QdrantURL(host="q.example.com", https=True)),
    ("qdrant://:s3cr%2Ft@q:6333", QdrantURL(host="q", api_key="s3cr/t")),
    ("qdrant+local:///vectors", QdrantLocalURL(path="vectors")),
    ("qdrant+local:////tmp/vectors/", QdrantLocalURL(path="/tmp/vectors")),
    ("qdrant+local:///:memory:", QdrantLocalURL(path=":memory:")),
]


@pytest.mark.parametrize(("url", "expected"), GOOD, ids=[url for url, _ in GOOD])
def test_every_documented_form_parses(url: str, expected: BackendURL) -> None:
    assert parse_backend_url(url) == expected


@pytest.mark.parametrize(("url", "expected"), GOOD, ids=[url for url, _ in GOOD])
def test_the_redacted_form_parses_back_to_the_same_url(url: str, expected: BackendURL) -> None:
    if getattr(expected, "password", "") or getattr(expected, "api_key", None):
        assert "***" in str(expected)
        return
    assert parse_backend_url(str(expected)) == expected


def test_derived_addresses() -> None:
    assert parse_queue_url("kafka://a:1,b:2").bootstrap_servers == "a:1,b:2"
    qdrant = parse_vectors_url("qdrants://q:6333")
    assert isinstance(qdrant, QdrantURL)
    assert qdrant.http_url == "https://q:6333"
    assert parse_vectors_url("qdrant://[::1]").http_url == "http://[::1]:6333"


BAD: list[tuple[str, str]] = [
    ("", "not a URL"),
    ("just-a-path.duckdb", "not a URL"),
    ("://host", "not a URL"),
    ("postgres://db/x", "unknown scheme 'postgres'"),
    ("duckdb://", "names no database file"),
    ("duckdb:///", "names no database file"),
    ("duckdb://host/file.duckdb", "'host' sits where a host would"),
    ("duckdb:///dir/", "names a directory"),
    ("duckdb:///x.duckdb?mode=ro", "unknown option(s) mode"),
    ("duckdb:///x.duckdb#frag", "fragment"),
    ("clickhouse://", "names no host"),
    ("clickhouse://user:pw@", "names no host"),
    ("clickhouse://:8123/db", "names no host"),
    ("clickhouse://host:http/db", "the port 'http' is not a number"),
    ("clickhouse://host:0/db", "the port '0'"),
    ("clickhouse://host:65536/db", "the port '65536'"),
    ("clickhouse://host/a/b", "must be one database name"),
    ("clickhouse://host/my-db", "'my-db' is not an identifier"),
    ("clickhouse://host/db?secure=maybe", "secure='maybe' is not true or false"),
    ("clickhouse://host/db?compress=1", "unknown option(s) compress (accepted: secure)"),
    ("clickhouse://host/db?secure=1&secure=0", "given twice"),
    ("clickhouse://ho st/db", "'ho st' is not a hostname"),
    ("clickhouse://::1:8123/db", "IPv6 host goes in brackets"),
    ("clickhouse://[::1/db", "IPv6 host goes in brackets"),
    ("clickhouse://[zz::1]:8123/db", "'zz::1' is not an IPv6 address"),
    ("chdb://", "names no data directory"),
    ("chdb:///:memory:", "chdb keeps its data in a directory"),
    ("chdb://host/dir", "sits where a host would"),
    ("chdb:///dir?database=bad-name", "'bad-name' is not an identifier"),
    ("kafka://", "names no broker"),
    ("kafka://k1,,k2", "an empty entry in the broker list"),
    ("kafka://k1,", "an empty entry in the broker list"),
    ("kafka://k1:nine", "the port 'nine'"),
    ("kafka://user:pw@k1:9092", "credentials don't go in the broker list"),
    ("kafka://k1:9092/topic", "the path '/topic' has no meaning"),
    ("kafka://k1?acks=all", "unknown option(s) acks"),
    ("qdrant://", "names no host"),
    ("qdrant://q:6333/collections", "the path '/collections' has no meaning"),
    ("qdrant://user:key@q", "no user name"),
    ("qdrant://:@q", "no user name"),
    ("qdrant://q?api_key=x", "unknown option(s) api_key"),
    ("qdrant+local://", "names no directory"),
    ("qdrant+local://host/dir", "sits where a host would"),
]


@pytest.mark.parametrize(("url", "message"), BAD, ids=[url or "empty" for url, _ in BAD])
def test_bad_urls_say_what_is_wrong_and_what_is_expected(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_backend_url(url, setting="server.store")

    text = str(raised.value)
    assert text.startswith("server.store=")
    assert message in text
    assert "expected" in text
    assert "://" in text.split("expected", 1)[1]


def test_a_known_scheme_with_a_problem_shows_only_its_own_form() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_backend_url("kafka://k1,,k2")
    assert str(raised.value).endswith("expected kafka://host1:9092,host2:9092")


def test_a_non_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a URL string but int"):
        parse_backend_url(8123)


@pytest.mark.parametrize(
    "url",
    [
        "clickhouse://admin:hunter2@ch:8123/bad-name",
        "clickhouse://admin:hunter2@:8123/pyflare",
        "clickhouse://admin:hunter2@ch:8123/pyflare?x=1",
        "qdrant://:hunter2@q:6333/path",
        "kafka://admin:hunter2@k1:9092",
        "redis://admin:hunter2@r:6379",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_backend_url(url)
    assert "hunter2" not in str(raised.value)
    assert "***" in str(raised.value)


@pytest.mark.parametrize(
    "url", ["clickhouse://admin:hunter2@ch:8123/pyflare", "qdrant://:hunter2@q:6333"]
)
def test_parsed_urls_never_show_the_password(url: str) -> None:
    parsed = parse_backend_url(url)
    assert "hunter2" not in str(parsed)
    assert "hunter2" not in repr(parsed)
    assert "hunter2" not in parsed.redacted()


STORE, QUEUE, VECTORS = "server.store", "collector.kafka.brokers", "server.vectors"


@pytest.mark.parametrize(
    ("parse", "url", "setting"),
    [
        (parse_store_url, "kafka://k1:9092", STORE),
        (parse_store_url, "qdrant://q:6333", STORE),
        (parse_store_url, "qdrant+local:///v", STORE),
        (parse_queue_url, "duckdb:///x.duckdb", QUEUE),
        (parse_queue_url, "clickhouse://ch/pyflare", QUEUE),
        (parse_vectors_url, "clickhouse://ch/pyflare", VECTORS),
        (parse_vectors_url, "chdb:///data", VECTORS),
        (parse_vectors_url, "kafka://k1", VECTORS),
    ],
)
def test_each_setting_takes_its_own_kind_of_backend(parse: object, url: str, setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(url)
    text = str(raised.value)
    assert text.startswith(f"{setting}=")
    assert "can't be used here" in text


@pytest.mark.parametrize(
    ("parse", "url", "kind"),
    [
        (parse_store_url, "duckdb:///x.duckdb", DuckDBURL),
        (parse_store_url, "clickhouse://ch/pyflare", ClickHouseURL),
        (parse_store_url, "clickhouses://ch/pyflare", ClickHouseURL),
        (parse_store_url, "chdb:///data", ChdbURL),
        (parse_queue_url, "kafka://k1", KafkaURL),
        (parse_vectors_url, "duckdb:///v.duckdb", DuckDBURL),
        (parse_vectors_url, "qdrant://q", QdrantURL),
        (parse_vectors_url, "qdrants://q", QdrantURL),
        (parse_vectors_url, "qdrant+local:///v", QdrantLocalURL),
    ],
)
def test_each_setting_accepts_its_backends(parse: object, url: str, kind: type) -> None:
    assert isinstance(parse(url), kind)
