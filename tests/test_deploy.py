"""The deployment files agree with PyFlare: services, ports, commands and settings.

No container engine or cluster runs here, so the files are parsed: every
``PYFLARE_*`` variable they set goes through the server's real settings loader,
every port and URL is checked against the service that should answer it, and
the Helm values against the spec's sizing (§10.2, §10.3).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import pyflare_server.settings
from pyflare.cli import build_parser
from pyflare.errors import ConfigError
from pyflare_server.settings import ServerSettings
from pyflare_server.storage.qdrant import MIN_SERVER_VERSION
from pyflare_server.storage.urls import (
    ClickHouseURL,
    KafkaURL,
    QdrantURL,
    parse_queue_url,
    parse_store_url,
    parse_vectors_url,
)

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CHART = DEPLOY / "helm" / "pyflare"
PYFLARE_SERVICES = {"receiver": "server", "worker": "worker", "query-api": "server"}
# Variables the settings table documents; nested ones (PYFLARE_COLLECTOR__…,
# PYFLARE_SERVER__…) are checked by loading them.
DOCUMENTED = set(re.findall(r"\bPYFLARE_[A-Z_]+[A-Z]\b", pyflare_server.settings.__doc__ or ""))
NESTED = ("PYFLARE_COLLECTOR__", "PYFLARE_SERVER__")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(DEPLOY / "docker-compose.yml")
    return loaded


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(port).rsplit(":", 1)[-1]) for port in service.get("ports", [])}


def _settings(env: dict[str, str]) -> ServerSettings:
    for name in env:
        if name.startswith("PYFLARE_"):
            assert name in DOCUMENTED or name.startswith(NESTED), f"{name} is no PyFlare setting"
    return ServerSettings.load(env=env)


# -- docker compose ----------------------------------------------------------------


def test_compose_has_the_scaled_modes_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "receiver",
        "worker",
        "query-api",
        "kafka",
        "clickhouse",
        "qdrant",
    }


@pytest.mark.parametrize("name", sorted(PYFLARE_SERVICES))
def test_pyflare_services_run_a_pyflare_command(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    command = service["command"]
    assert command[0] == PYFLARE_SERVICES[name]
    build_parser().parse_args(command)  # exits (SystemExit) on an unknown flag
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / service["build"]["context"]).resolve() == DEPLOY.parent


@pytest.mark.parametrize("name", sorted(PYFLARE_SERVICES))
def test_every_setting_in_compose_loads(compose: dict[str, Any], name: str) -> None:
    settings = _settings(_environment(compose["services"][name]))

    store = parse_store_url(settings.server.store)
    assert isinstance(store, ClickHouseURL)
    assert settings.server.vectors is not None
    assert isinstance(parse_vectors_url(settings.server.vectors), QdrantURL)
    assert settings.collector.kafka.brokers == ("kafka:9092",)


def test_published_ports_are_the_ones_the_settings_listen_on(compose: dict[str, Any]) -> None:
    services = compose["services"]
    receiver = _settings(_environment(services["receiver"]))
    assert _container_ports(services["receiver"]) == {
        receiver.otlp_grpc_port,
        receiver.otlp_http_port,
    }
    api = _settings(_environment(services["query-api"]))
    assert _container_ports(services["query-api"]) == {api.api_port}
    worker = services["worker"]
    metrics_port = int(worker["command"][worker["command"].index("--metrics-port") + 1])
    assert _container_ports(worker) == {metrics_port}


def test_backend_urls_name_compose_services_on_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in PYFLARE_SERVICES:
        env = _environment(services[name])
        store = parse_store_url(env["PYFLARE_STORE"])
        assert isinstance(store, ClickHouseURL)
        assert store.port in _container_ports(services[store.host])
        clickhouse = _environment(services[store.host])
        assert (store.username, store.password, store.database) == (
            clickhouse["CLICKHOUSE_USER"],
            clickhouse["CLICKHOUSE_PASSWORD"],
            clickhouse["CLICKHOUSE_DB"],
        )
        vectors = parse_vectors_url(env["PYFLARE_SERVER__VECTORS"])
        assert isinstance(vectors, QdrantURL)
        assert vectors.port in _container_ports(services[vectors.host])
        brokers = parse_queue_url("kafka://" + env["PYFLARE_COLLECTOR__KAFKA__BROKERS"])
        advertised = _environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
        assert all(f"//{broker}" in advertised for broker in brokers.brokers)
    redis_url = _environment(services["query-api"])["PYFLARE_SERVER__RATE_LIMIT__REDIS_URL"]
    host, port = re.fullmatch(r"redis://([\w-]+):(\d+)/\d+", redis_url).groups()
    assert int(port) in _container_ports(services[host])


def test_kafka_runs_in_kraft_mode_with_enough_replicas(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka = _environment(services["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kafka['KAFKA_NODE_ID']}@kafka:9093"
    assert kafka["CLUSTER_ID"]
    assert not any("zookeeper" in name for name in services)
    brokers = sum(1 for s in services.values() if "kafka" in str(s.get("image", "")))
    for name in PYFLARE_SERVICES:
        settings = _settings(_environment(services[name]))
        assert settings.collector.kafka.topics.replication_factor <= brokers


def test_dependencies_are_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert set(services["worker"]["depends_on"]) >= {"kafka", "clickhouse", "qdrant"}


def test_qdrant_is_recent_enough_for_reference_sampling(compose: dict[str, Any]) -> None:
    tag = compose["services"]["qdrant"]["image"].rsplit(":v", 1)[1]
    major, minor = (int(part) for part in tag.split(".")[:2])
    assert (major, minor) >= MIN_SERVER_VERSION


def test_the_image_serves_every_port_and_has_the_scaled_extra() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    exposed = {int(port) for port in re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split()}
    defaults = ServerSettings.load(env={})
    assert exposed >= {defaults.otlp_grpc_port, defaults.otlp_http_port, defaults.api_port, 9464}
    assert 'pip install ".[scaled]"' in dockerfile
    assert "scaled = [" in (DEPLOY.parent / "pyproject.toml").read_text()
    assert 'ENTRYPOINT ["pyflare"]' in dockerfile


def test_the_settings_check_catches_a_misspelt_variable() -> None:
    with pytest.raises(ConfigError, match="broker"):
        ServerSettings.load(env={"PYFLARE_COLLECTOR__KAFKA__BROKER": "kafka:9092"})
    with pytest.raises(AssertionError, match="is no PyFlare setting"):
        _settings({"PYFLARE_KAFKA_BROKERS": "kafka:9092"})


# -- helm ---------------------------------------------------------------------------

COMPONENTS = ("receiver", "worker", "queryApi")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(CHART / "values.yaml")
    return loaded


def _helm_env(values: dict[str, Any], component: str) -> dict[str, str]:
    env = {**values["env"], **values[component].get("env", {})}
    secrets = {"CLICKHOUSE_PASSWORD": "s3cret", "REDIS_PASSWORD": "r3dis"}
    return {
        key: re.sub(r"\$\((\w+)\)", lambda m: secrets[m.group(1)], str(value))
        for key, value in env.items()
    }


def test_chart_metadata() -> None:
    chart = _yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "pyflare"
    assert [d["name"] for d in chart["dependencies"]] == ["redis"]
    assert chart["dependencies"][0]["condition"] == "redis.enabled"


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_setting_in_the_chart_loads(values: dict[str, Any], component: str) -> None:
    settings = _settings(_helm_env(values, component))

    store = parse_store_url(settings.server.store)
    assert isinstance(store, ClickHouseURL)
    assert store.password == "s3cret"
    assert isinstance(parse_vectors_url(settings.server.vectors or ""), QdrantURL)
    kafka = parse_queue_url("kafka://" + ",".join(settings.collector.kafka.brokers))
    assert isinstance(kafka, KafkaURL)
    assert list(kafka.brokers) == values["kafka"]["externalBrokers"]
    build_parser().parse_args(values[component]["command"])


def test_chart_ports_match_the_settings(values: dict[str, Any]) -> None:
    receiver = _settings(_helm_env(values, "receiver"))
    assert values["receiver"]["service"]["ports"] == {
        "grpc": receiver.otlp_grpc_port,
        "http": receiver.otlp_http_port,
    }
    api = _settings(_helm_env(values, "queryApi"))
    assert values["queryApi"]["service"]["ports"] == {"http": api.api_port}
    command = values["worker"]["command"]
    assert int(command[command.index("--metrics-port") + 1]) == values["worker"]["metricsPort"]
    redis = _helm_env(values, "queryApi")["PYFLARE_SERVER__RATE_LIMIT__REDIS_URL"]
    assert redis.startswith("redis://:r3dis@pyflare-redis-master:6379/")


# The spec's §10.2 values: replicas, requests, limits and autoscaling per component.
SPEC_VALUES = {
    "receiver": (3, ("500m", "512Mi"), ("2000m", "2Gi"), (3, 20, 70)),
    "worker": (3, ("1000m", "1Gi"), ("4000m", "4Gi"), (3, 10, 70)),
    "queryApi": (2, ("500m", "512Mi"), ("2000m", "2Gi"), None),
}


@pytest.mark.parametrize("component", COMPONENTS)
def test_values_follow_the_specs_production_values(values: dict[str, Any], component: str) -> None:
    replicas, requests, limits, autoscaling = SPEC_VALUES[component]
    part = values[component]
    assert part["replicaCount"] == replicas
    assert (part["resources"]["requests"]["cpu"], part["resources"]["requests"]["memory"]) == (
        requests
    )
    assert (part["resources"]["limits"]["cpu"], part["resources"]["limits"]["memory"]) == limits
    if autoscaling is None:
        assert part["autoscaling"]["enabled"] is False
    else:
        scaling = part["autoscaling"]
        assert scaling["enabled"] is True
        assert (
            scaling["minReplicas"],
            scaling["maxReplicas"],
            scaling["targetCPUUtilizationPercentage"],
        ) == autoscaling


def test_values_match_the_specs_ingress_and_dependencies(values: dict[str, Any]) -> None:
    ingress = values["queryApi"]["ingress"]
    assert ingress["enabled"] is True
    assert ingress["className"] == "nginx"
    assert values["receiver"]["service"]["type"] == "LoadBalancer"
    assert values["kafka"]["enabled"] is False
    assert values["qdrant"]["enabled"] is False
    assert values["redis"] == {
        "enabled": True,
        "architecture": "standalone",
        "auth": {"enabled": True},
        "passwordSecret": {"name": "pyflare-redis", "key": "redis-password"},
    }


# The spec's §10.3 sizing guide: (replicas, CPU, memory) per component.
SPEC_SIZING = {
    "small": {"receiver": (2, "2", "2Gi"), "worker": (2, "2", "4Gi"), "queryApi": (2, "1", "1Gi")},
    "medium": {"receiver": (5, "4", "4Gi"), "worker": (5, "4", "8Gi"), "queryApi": (3, "2", "2Gi")},
    "large": {
        "receiver": (20, "4", "8Gi"),
        "worker": (10, "8", "16Gi"),
        "queryApi": (5, "4", "4Gi"),
    },
}


@pytest.mark.parametrize("profile", sorted(SPEC_SIZING))
def test_sizing_profiles_follow_the_specs_guide(values: dict[str, Any], profile: str) -> None:
    overrides = _yaml(CHART / f"values-{profile}.yaml")
    partitions = int(values["env"]["PYFLARE_COLLECTOR__KAFKA__TOPICS__PARTITIONS"])
    for component, (replicas, cpu, memory) in SPEC_SIZING[profile].items():
        part = overrides[component]
        assert part["replicaCount"] == replicas
        assert part["resources"]["limits"] == {"cpu": cpu, "memory": memory}
        assert part["autoscaling"]["minReplicas"] == replicas
        assert part["autoscaling"]["maxReplicas"] >= replicas
        for key in part:
            assert key in values[component], f"values-{profile}.yaml: unknown {component}.{key}"
    # A worker beyond the topic's partitions would sit idle.
    assert overrides["worker"]["autoscaling"]["maxReplicas"] <= partitions


def _has_path(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_templates_use_only_values_that_exist(values: dict[str, Any]) -> None:
    templates = list((CHART / "templates").glob("*"))
    assert {path.name for path in templates} >= {"deployments.yaml", "services.yaml", "hpa.yaml"}
    for path in templates:
        text = path.read_text()
        for dotted in re.findall(r"\.Values\.([\w.]+)", text):
            assert _has_path(values, dotted), f"{path.name} uses .Values.{dotted}"
        for dotted in re.findall(r"\$component\.([\w.]+)", text):
            users = list(COMPONENTS)
            if dotted.startswith("service."):  # in the receiver's and the API's branches
                users = ["receiver"] if dotted.endswith(".grpc") else ["receiver", "queryApi"]
            elif dotted == "metricsPort":  # in the worker's branch
                users = ["worker"]
            for component in users:
                assert _has_path(values[component], dotted), f"{path.name}: {component}.{dotted}"


def test_secret_variables_come_before_the_settings_that_expand_them(
    values: dict[str, Any],
) -> None:
    template = (CHART / "templates" / "deployments.yaml").read_text()
    settings_start = template.index("range $variable, $value")
    settings = [values["env"]] + [values[component].get("env", {}) for component in COMPONENTS]
    expanded = {
        variable
        for env in settings
        for value in env.values()
        for variable in re.findall(r"\$\((\w+)\)", str(value))
    }
    assert expanded == {"CLICKHOUSE_PASSWORD", "REDIS_PASSWORD"}
    for variable in expanded:
        assert template.index(f"- name: {variable}") < settings_start
