"""The OpenAPI document as the server really answers: every error status a route can return, in the error
shape of its protocol, instead of FastAPI's default 422 (aiaas answers a malformed request with 400).

A schema-driven fuzzer (schemathesis, tests/hardening/test_schema_fuzz.py) checks the server against this
document: no status it does not list, and no server error.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from aiaas.service.governance.validation import GROUP_BY, MODEL_RE, NAME_RE, SCOPES
from aiaas.types.datatypes import V2_NUMPY_NAMES

_V2_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_OPENAI_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}

# status -> when it is answered
_STATUSES = {
    "400": "The request is malformed: the message names the field and what is allowed",
    "401": "No valid API key (Authorization: Bearer <key>)",
    "402": "The tenant's or key's budget is spent",
    "403": "The key's role does not allow this",
    "404": "No such resource, or one the key may not see",
    "405": "The method is not allowed on this path (see Allow)",
    "409": "Conflicts with the current state (exists already, or not cancellable)",
    "413": "The request body exceeds the route's limit (refused while it is read)",
    "415": "Unsupported Content-Encoding or media type",
    "429": "A rate or concurrency limit is exceeded (see Retry-After)",
    "503": "The model or a dependency is not ready (see Retry-After)",
}
_TIME = {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}, {"maxLength": 0}]}  # blank: no bound
_NAME = {"type": "string", "pattern": NAME_RE.pattern}
# what a parameter of this name accepts, wherever it appears (the service validates the same rules)
_PARAMETERS: dict[tuple[str, str], dict[str, Any]] = {
    ("path", "model"): {"type": "string", "pattern": MODEL_RE.pattern},
    ("path", "version"): {"type": "string", "pattern": "^[0-9]{1,9}$"},
    ("path", "tenant"): _NAME,
    ("path", "key_id"): _NAME,
    ("path", "subject"): _NAME,
    ("path", "scope"): {"type": "string", "enum": list(SCOPES)},
    ("query", "tenant"): _NAME,
    ("query", "key"): _NAME,
    ("query", "group_by"): {"type": "string", "enum": list(GROUP_BY), "default": "model"},
    ("query", "action"): {"type": "string", "pattern": "^[A-Za-z0-9._]{1,64}$"},
    ("query", "start"): _TIME,
    ("query", "end"): _TIME,
}
_INFER_BODY = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "shape": {"type": "array", "maxItems": 32, "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": list(V2_NUMPY_NAMES)},
                    "parameters": {"type": "object"},
                    "data": {"description": "row-major values (nested or flat); or parameters.binary_data_size"},
                },
            },
        },
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    },
}
_PUBLIC = {"/metrics": ("401", "405")}  # public routes answer only these errors (401: metrics_require_key)
_HEALTH = ("405", "503")


def _response(description: str, v2: bool) -> dict[str, Any]:
    ref = "#/components/schemas/V2Error" if v2 else "#/components/schemas/Error"
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def document(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that lists every status aiaas answers on each operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = _OPENAI_ERROR
        components["V2Error"] = _V2_ERROR
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in schema.get("paths", {}).items():
            health = path.startswith("/v2/health/") or path == "/health"
            wanted = _HEALTH if health else _PUBLIC.get(path, tuple(_STATUSES))
            for op in operations.values():
                for param in op.get("parameters", ()):
                    known = _PARAMETERS.get((param.get("in", ""), param.get("name", "")))
                    if known is not None:
                        param["schema"] = dict(known)
                if path.endswith("/infer"):
                    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _INFER_BODY}}}
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                if path == "/metrics":
                    text = {"text/plain": {"schema": {"type": "string"}}}
                    responses["200"] = {"description": "Prometheus text exposition", "content": text}
                for status in wanted:
                    responses.setdefault(status, _response(_STATUSES[status], path.startswith("/v2")))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
