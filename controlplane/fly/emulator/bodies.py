"""Request bodies as Fly's Go server decodes them: typed against the request schema of Fly's OpenAPI
document, with Go's 400 answer when a field has the wrong JSON type.

``encoding/json`` decodes a body into the request struct before the handler runs; a value of the
wrong type anywhere (``"guest": "big"``, ``"restart": []``, ``"checks": {"x": 1}``, a string where
``snapshot_retention`` wants a number, a fraction or an out-of-range number where an ``int`` is
expected) fails the decode and the API answers 400 with ``json: cannot unmarshal <JSON type> into Go
struct field <path> of type <Go type>``. Unknown fields are ignored and ``null`` leaves a field at
its zero value, as in Go. The parsing itself (size, nesting depth, number length, NaN/Infinity) is
:func:`controlplane.limits.parse_json_body`'s.

One leniency Fly documents: a service's ``autostop`` takes a boolean (old format) or a string.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from controlplane.fly.emulator.config import openapi_document, openapi_schemas
from controlplane.fly.emulator.errors import ApiError, bad_request

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_DEPTH = 64  # schemas are much shallower; the body's depth is bounded before parsing anyway

#: Fields that accept more JSON types than their schema says (Fly's documented compatibility).
_ALSO_ACCEPTS: dict[str, tuple[type, ...]] = {"autostop": (bool,)}

#: String fields Fly decodes as durations ("15s").
_DURATIONS = frozenset({"timeout", "interval", "grace_period"})

_GO_TYPES = {"string": "string", "integer": "int", "number": "float64", "boolean": "bool"}


@cache
def request_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path template under /v1) -> the JSON request body schema, from Fly's OpenAPI file."""
    spec = openapi_document()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            schema = (
                operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            if isinstance(schema, dict):
                found[(method.upper(), "/v1" + path)] = schema
    return found


def _resolve(schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name of the Go type, the schema with $ref and a lone allOf resolved)."""
    name = ""
    schemas = openapi_schemas()
    for _ in range(16):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = schemas[name]
        elif "allOf" in schema and "properties" not in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            break
    return name, schema


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(name: str, schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if name:
        return name.removeprefix("fly.").removeprefix("main.")
    if kind == "array":
        return "[]" + _go_type(*_resolve(schema.get("items") or {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + _go_type(*_resolve(schema["additionalProperties"]))
    return _GO_TYPES.get(kind, "struct") if isinstance(kind, str) else "struct"


def _refuse(value: Any, path: str, struct: str, name: str, schema: dict[str, Any]) -> ApiError:
    given = _json_type(value)
    if not path:
        return bad_request(f"json: cannot unmarshal {given} into Go value of type {struct or 'struct'}")
    where = f"Go struct field {struct}.{path}" if struct else f"Go struct field {path}"
    if path.rsplit(".", 1)[-1] in _DURATIONS and schema.get("type") == "string":
        return bad_request(
            f"json: cannot unmarshal {given} into {where} of type fly.Duration: "
            'invalid duration, expected a string like "15s"'
        )
    return bad_request(f"json: cannot unmarshal {given} into {where} of type {_go_type(name, schema)}")


def check_value(value: Any, schema: dict[str, Any], path: str = "", struct: str = "", depth: int = 0) -> None:
    """Raise Fly's 400 if ``value`` does not decode into ``schema``'s Go type (see the docstring)."""
    if value is None or depth > _MAX_DEPTH:
        return
    name, schema = _resolve(schema)
    kind = schema.get("type")
    if not isinstance(kind, str):
        kind = "object" if "properties" in schema or "allOf" in schema else None
    field = path.rsplit(".", 1)[-1]
    if field in _ALSO_ACCEPTS and isinstance(value, _ALSO_ACCEPTS[field]):
        return
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif kind == "array":
        ok = isinstance(value, list)
    elif kind == "object":
        ok = isinstance(value, dict)
    else:
        return  # an untyped schema: anything decodes
    if not path and name:
        struct = name.removeprefix("fly.").removeprefix("main.")
    if not ok:
        raise _refuse(value, path, struct, name, schema)
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                check_value(item, items, path, struct, depth + 1)
    elif isinstance(value, dict):
        properties = _properties(schema)
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key) if properties is not None else None
            if sub is None and isinstance(extra, dict) and properties is None:
                sub = extra
            if isinstance(sub, dict):
                check_value(item, sub, f"{path}.{key}" if path else key, struct, depth + 1)


def _properties(schema: dict[str, Any]) -> dict[str, Any] | None:
    if "properties" in schema:
        props: dict[str, Any] = schema["properties"]
        return props
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_properties(_resolve(part)[1]) or {})
        return merged
    return None


def check_request_body(method: str, template: str, body: Any) -> None:
    """Type-check a parsed request body against its route's schema (no schema: nothing to check)."""
    schema = request_schemas().get((method, template))
    if schema is not None and body is not None:
        check_value(body, schema)


__all__ = ["INT64_MAX", "INT64_MIN", "check_request_body", "check_value", "request_schemas"]
