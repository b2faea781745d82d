"""The OpenAPI 3.1 document of the query API, served at ``GET /api/v1/openapi.json``.

Built from the app's routes, not written by hand: every API endpoint declares
its operation with :func:`documented` (summary, parameters, the response
model from :mod:`pyflare_server.api._models`), and its permission with
:func:`~pyflare_server.auth.permissions.requires`. The document lists each
``/api/v1`` route of the app that serves it, so a resource added to the app
appears without touching this module; an undocumented route is left out
(a test fails on any). Paths are relative to the server URL ``/api/v1``, as in
the spec. Errors are the ``Problem`` schema (``application/problem+json``);
operations that need a permission list 401, 403 and 429 as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pyflare._version import __version__
from pyflare_server.api import _models
from pyflare_server.api._http import PROBLEM_MEDIA_TYPE, json_response
from pyflare_server.auth.permissions import PUBLIC, permission_of, requires

__all__ = ["PREFIX", "Operation", "Param", "build_document", "documented", "operation_of", "routes"]

PREFIX: Final = "/api/v1"
_ATTRIBUTE: Final = "__pyflare_operation__"
_REF: Final = "#/components/schemas/{model}"
_F = TypeVar("_F", bound=Callable[..., object])
_STATUS_TEXT: Final[Mapping[int, str]] = {
    400: "A parameter or the body is malformed or out of range (the detail names it)",
    401: "No credentials, or bad ones",
    403: "The caller's role lacks the permission",
    404: "Not found",
    413: "The body is too large",
    415: "The body's media type is not accepted",
    422: "Well formed but cannot be answered",
    429: "Too many requests (see Retry-After)",
    503: "The store could not answer (see Retry-After)",
}


@dataclass(frozen=True)
class Param:
    """One query or path parameter. ``schema`` is its JSON schema."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""
    location: str = "query"
    required: bool = False
    repeated: bool = False

    def to_openapi(self) -> dict[str, Any]:
        schema = dict(self.schema)
        if self.repeated:
            schema = {"type": "array", "items": schema}
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.location,
            "required": self.required or self.location == "path",
            "schema": schema,
        }
        if self.description:
            out["description"] = self.description
        if self.repeated:
            out["style"], out["explode"] = "form", True
        return out


@dataclass(frozen=True)
class Operation:
    """What :func:`documented` declares about an endpoint."""

    summary: str
    response: type[BaseModel] | Mapping[str, Any] | None
    parameters: tuple[Param, ...] = ()
    description: str = ""
    status: int = 200
    errors: tuple[int, ...] = (400, 503)
    request_body: Mapping[str, Any] | None = None
    media_types: tuple[str, ...] = ("application/json",)
    tags: tuple[str, ...] = field(default_factory=tuple)


def documented(operation: Operation) -> Callable[[_F], _F]:
    """Mark an endpoint with its OpenAPI operation."""

    def mark(endpoint: _F) -> _F:
        setattr(endpoint, _ATTRIBUTE, operation)
        return endpoint

    return mark


def operation_of(endpoint: object) -> Operation | None:
    value = getattr(endpoint, _ATTRIBUTE, None)
    return value if isinstance(value, Operation) else None


def _schema(value: type[BaseModel] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, type):
        return {"$ref": _REF.format(model=value.__name__)}
    return dict(value)


def _operation(route: Route, method: str, operation: Operation) -> dict[str, Any]:
    permission = permission_of(route.endpoint)
    responses: dict[str, Any] = {}
    body: dict[str, Any] = {"description": operation.summary}
    if operation.response is not None:
        body["content"] = {
            media: {"schema": _schema(operation.response)} for media in operation.media_types
        }
    responses[str(operation.status)] = body
    errors = set(operation.errors)
    if permission not in (None, PUBLIC):
        errors |= {401, 403, 429}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _schema(_models.Problem)}},
        }
    out: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": route.name,
        "tags": list(operation.tags),
        "parameters": [p.to_openapi() for p in operation.parameters],
        "responses": responses,
        "x-permission": permission,
    }
    if operation.description:
        out["description"] = operation.description
    if operation.request_body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(operation.request_body)}},
        }
    if permission == PUBLIC:
        out["security"] = []
    return out


def _models_used(operations: Iterable[Operation]) -> list[type[BaseModel]]:
    used: dict[str, type[BaseModel]] = {"Problem": _models.Problem}
    for operation in operations:
        if isinstance(operation.response, type):
            used[operation.response.__name__] = operation.response
    return list(used.values())


def build_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the documented ``/api/v1`` routes among ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    operations: list[Operation] = []
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith(PREFIX + "/"):
            continue
        operation = operation_of(route.endpoint)
        if operation is None:
            continue
        operations.append(operation)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            item = paths.setdefault(route.path.removeprefix(PREFIX), {})
            item[method.lower()] = _operation(route, method.lower(), operation)
    _, top = models_json_schema(
        [(model, "serialization") for model in _models_used(operations)], ref_template=_REF
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PyFlare API",
            "version": __version__,
            "description": "PyFlare's query API: traces, metrics, drift, costs and SQL. "
            "Errors are application/problem+json.",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


@requires(PUBLIC)
async def openapi_document(request: Request) -> Response:
    """``GET /api/v1/openapi.json``: the document of the app serving the request."""
    document = getattr(request.app.state, "pyflare_openapi", None)
    if document is None:
        document = build_document(request.app.routes)
        request.app.state.pyflare_openapi = document
    return json_response(document)


def routes() -> list[Route]:
    return [Route(f"{PREFIX}/openapi.json", openapi_document, methods=["GET"], name="openapi")]
