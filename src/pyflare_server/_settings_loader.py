"""How :meth:`ServerSettings.load` merges flags, variables, the YAML file and defaults.

Every value is remembered with where it came from (a flag, a variable, a line of
the file), so an error can name it.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from pyflare.errors import ConfigError
from pyflare_server.settings import (
    KeyPath,
    ServerSettings,
    _join_endpoint,
    _port,
    split_endpoint,
)
from pyflare_server.storage.urls import hide_password

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


class Loader:
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
    # A URL's password (clickhouse://user:secret@host) never reaches an error message.
    text = repr(hide_password(value) if isinstance(value, str) else value)
    return text if len(text) <= 80 else text[:77] + "..."
