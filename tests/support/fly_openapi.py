"""Validate Fly Machines API requests and responses against Fly's OpenAPI 3.0.1 spec.

Shared test helper: the Fly client tests validate the REQUESTS they send, the emulator tests validate
the RESPONSES the emulator returns. Both go through the same spec copy
(``controlplane/fly/emulator/fly_machines_openapi.json``, identical to
``../shared/reference/fly-machines-openapi.json``).

    from tests.support.fly_openapi import validate_request, validate_response
    validate_request("POST", "/v1/apps/a/machines", None, {"config": {"image": "x"}})
    validate_response("GET", "/v1/apps/a/machines/abc", 200, body)

Both raise :class:`OpenAPIValidationError` (an ``AssertionError``) listing every problem, and return
the matched :class:`Operation` on success. Paths may be full URLs, may carry ``/v1`` and a query string.

Known gaps between the spec and the real API (reference fly-machines.md §16) are applied here, in one
place, so callers do not each invent their own exceptions:

* lease responses are wrapped as ``{"status": "success", "data": Lease}`` in reality (spec: flat);
* ``autostop`` is returned as ``false``/``true`` for off/stop and a string only for ``"suspend"``, and
  accepted in either form (the spec's own description says so);
* error ``status`` values go beyond the spec enum (``name_taken``, ``already_exists``, ...);
* 408/409/412/422/429/5xx are mostly undeclared: any undeclared error status must carry a Fly error
  body (``{"error": str, "status"?: str}``, or the lease style ``{"status":"error","message":str,...}``);
* ``POST /apps`` accepts ``app_name`` as well as ``name``; list machines accepts ``metadata.<key>``;
  restart accepts ``force_stop``; delete machine accepts ``kill``; app create accepts ``wait``;
  lease create accepts ``?ttl`` and an empty body; secrets list accepts ``version`` (fly-go);
  ``POST /apps/{app}/secrets`` accepts ``null`` values (unset).

Request bodies are checked strictly by default (unknown fields are errors) because Fly silently drops
unknown fields, which is exactly the bug a test should catch (e.g. fly.toml's ``auto_stop_machines``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema

_REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_CANDIDATES = (
    _REPO_ROOT / "controlplane" / "fly" / "emulator" / "fly_machines_openapi.json",
    _REPO_ROOT.parent / "shared" / "reference" / "fly-machines-openapi.json",
)

_METHODS = ("get", "post", "put", "patch", "delete")

# Query parameters the real API accepts that the spec does not declare: operationId -> names.
_EXTRA_QUERY_PARAMS: dict[str, frozenset[str]] = {
    "Apps_create": frozenset({"wait"}),
    "Apps_delete": frozenset({"force"}),
    "Machines_delete": frozenset({"kill"}),
    "Machines_restart": frozenset({"force_stop"}),
    "Machines_create_lease": frozenset({"ttl"}),
    "Secrets_list": frozenset({"version"}),
}
# Query parameter name prefixes accepted beyond the spec (documented filters).
_EXTRA_QUERY_PREFIXES: dict[str, tuple[str, ...]] = {
    "Machines_list": ("metadata.",),
}
# Request body fields the real API accepts beyond the spec: schema name -> extra properties.
_EXTRA_BODY_FIELDS: dict[str, dict[str, Any]] = {
    "CreateAppRequest": {"app_name": {"type": "string"}},
}
# Operations whose request body the spec marks required but real clients omit.
_OPTIONAL_BODY_OPS = frozenset({"Machines_create_lease", "Machines_start", "Machines_suspend"})
_LEASE_OPS = frozenset({"Machines_create_lease", "Machines_show_lease", "Machines_release_lease"})

FLY_ERROR_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "status": {"type": "string"}},
}
LEASE_ERROR_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "message"],
    "properties": {
        "status": {"const": "error"},
        "message": {"type": "string"},
        "code": {"type": "string"},
    },
}


class OpenAPIValidationError(AssertionError):
    """A request or response does not match the spec; ``problems`` lists every finding."""

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = list(problems)
        super().__init__(f"{where}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # spec path, e.g. /apps/{app_name}/machines/{machine_id}
    operation_id: str
    path_params: dict[str, str] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class _Spec:
    raw: dict[str, Any]
    request_components: dict[str, Any]
    response_components: dict[str, Any]
    routes: tuple[tuple[re.Pattern[str], str, int], ...]


def _find_spec_file() -> Path:
    for candidate in SPEC_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Fly OpenAPI spec not found in {[str(c) for c in SPEC_CANDIDATES]}")


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (draft 7): nullable, drop examples/x- keys."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "xml", "externalDocs", "discriminator", "deprecated"):
            continue
        if key.startswith("x-"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if out.pop("nullable", False):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    out.pop("readOnly", None)
    out.pop("writeOnly", None)
    return out


def _strict_objects(node: Any) -> Any:
    """Forbid unknown properties in every object schema that declares its properties."""
    if isinstance(node, list):
        return [_strict_objects(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict_objects(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def _autostop_accepts_booleans(schemas: dict[str, Any]) -> None:
    # The spec's own description: "Accepts a string (new format) or a boolean (old format)"; responses
    # use false/true for off/stop, so a GET -> modify -> POST round trip sends booleans back.
    service = schemas.get("fly.MachineService", {}).get("properties", {})
    if "autostop" in service:
        service["autostop"] = {
            "anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["suspend", "off", "stop"]}]
        }


def _response_relaxations(schemas: dict[str, Any]) -> None:
    _autostop_accepts_booleans(schemas)
    if "main.statusCode" in schemas:
        schemas["main.statusCode"] = {"type": "string"}


def _request_relaxations(schemas: dict[str, Any]) -> None:
    _autostop_accepts_booleans(schemas)
    values = schemas.get("AppSecretsUpdateRequest", {}).get("properties", {}).get("values")
    if values is not None:  # {"values": {"OLD": null}} unsets a secret (reference §3.4)
        values["additionalProperties"] = {"type": ["string", "null"]}
    for name, extra in _EXTRA_BODY_FIELDS.items():
        if name in schemas:
            schemas[name].setdefault("properties", {}).update(extra)


@lru_cache(maxsize=1)
def _load() -> _Spec:
    raw = json.loads(_find_spec_file().read_text())
    converted = _convert(raw["components"]["schemas"])
    request_schemas = copy.deepcopy(converted)
    _request_relaxations(request_schemas)
    request_schemas = _strict_objects(request_schemas)
    response_schemas = copy.deepcopy(converted)
    _response_relaxations(response_schemas)
    routes: list[tuple[re.Pattern[str], str, int]] = []
    for template in raw["paths"]:
        params = re.findall(r"\{[^}]+\}", template)
        regex = "^" + re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        regex = regex.replace("(?P<fly-", "(?P<fly_")  # defensive: group names must be identifiers
        routes.append((re.compile(regex), template, len(params)))
    routes.sort(key=lambda item: item[2])
    return _Spec(
        raw=raw,
        request_components={"schemas": request_schemas},
        response_components={"schemas": response_schemas},
        routes=tuple(routes),
    )


def spec() -> dict[str, Any]:
    """The raw spec document (do not mutate)."""
    return _load().raw


def _split(path: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(path)
    route = parts.path or "/"
    if route.startswith("/v1/") or route == "/v1":
        route = route[3:] or "/"
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    return route.rstrip("/") or "/", query


def match_operation(method: str, path: str) -> Operation:
    """Find the spec operation for ``method path`` (templated paths, /v1 prefix optional)."""
    loaded = _load()
    route, _ = _split(path)
    lower = method.lower()
    path_matched = False
    for regex, template, _count in loaded.routes:
        found = regex.match(route)
        if not found:
            continue
        path_matched = True
        op = loaded.raw["paths"][template].get(lower)
        if op is None:
            continue
        return Operation(
            method=method.upper(),
            template=template,
            operation_id=op.get("operationId", f"{method} {template}"),
            path_params=dict(found.groupdict()),
            spec=op,
        )
    reason = "method not allowed for path" if path_matched else "no such path in spec"
    raise OpenAPIValidationError(f"{method.upper()} {path}", [reason])


def _schema_errors(schema: Any, instance: Any, components: dict[str, Any], label: str) -> list[str]:
    wrapped = {"allOf": [schema], "components": components}
    validator = jsonschema.Draft7Validator(wrapped)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        problems.append(f"{label} {where}: {error.message}")
    return problems


def _coerce_query_value(raw: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "boolean":
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        return raw
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def _param_values(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]


def validate_request(
    method: str,
    path: str,
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    json_body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    strict: bool = True,
) -> Operation:
    """Check query parameters and JSON body of a request against the spec.

    ``params`` may be a mapping (values may be lists for repeated params) or a list of pairs; a query
    string already in ``path`` is merged in. ``strict`` rejects unknown query params and body fields.
    """
    op = match_operation(method, path)
    _, query = _split(path)
    if params:
        pairs = params.items() if isinstance(params, Mapping) else params
        for key, value in pairs:
            query.setdefault(str(key), []).extend(_param_values(value))
    problems: list[str] = []
    declared = {p["name"]: p for p in op.spec.get("parameters", []) if "name" in p}
    extra_names = _EXTRA_QUERY_PARAMS.get(op.operation_id, frozenset())
    extra_prefixes = _EXTRA_QUERY_PREFIXES.get(op.operation_id, ())
    for name, values in query.items():
        param = declared.get(name)
        if param is None or param.get("in") != "query":
            if name in extra_names or any(name.startswith(p) for p in extra_prefixes):
                continue
            if strict:
                problems.append(f"query parameter {name!r} is not accepted by {op.operation_id}")
            continue
        schema = _convert(param.get("schema", {}))
        for raw in values:
            # Fly accepts comma-separated lists for e.g. wait?state= and list?state=.
            pieces = raw.split(",") if name == "state" else [raw]
            for piece in pieces:
                value = _coerce_query_value(piece, schema)
                problems += _schema_errors(schema, value, _load().request_components, f"query {name}")
    for name, param in declared.items():
        if param.get("in") == "query" and param.get("required") and name not in query:
            problems.append(f"required query parameter {name!r} missing")
        if param.get("in") == "header" and param.get("required"):
            present = {k.lower() for k in (headers or {})}
            if name.lower() not in present:
                problems.append(f"required header {name!r} missing")
    body_spec = op.spec.get("requestBody")
    if body_spec is None:
        if json_body is not None and method.upper() not in ("POST", "PUT", "PATCH"):
            problems.append(f"{op.operation_id} takes no request body")
    else:
        schema = body_spec.get("content", {}).get("application/json", {}).get("schema")
        if json_body is None:
            if body_spec.get("required") and op.operation_id not in _OPTIONAL_BODY_OPS:
                problems.append(f"{op.operation_id} requires a JSON body")
        elif schema is not None:
            components = _load().request_components if strict else _non_strict_request_components()
            problems += _schema_errors(_convert(schema), json_body, components, "body")
    if problems:
        raise OpenAPIValidationError(f"request {method.upper()} {path}", problems)
    return op


@lru_cache(maxsize=1)
def _non_strict_request_components() -> dict[str, Any]:
    schemas = _convert(_load().raw["components"]["schemas"])
    _request_relaxations(schemas)
    return {"schemas": schemas}


def _declared_response(op: Operation, status: int) -> tuple[bool, Mapping[str, Any] | None]:
    responses: Mapping[str, Any] = op.spec.get("responses", {})
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            schema = responses[key].get("content", {}).get("application/json", {}).get("schema")
            return True, schema
    return False, None


def validate_response(method: str, path: str, status: int, json_body: Any) -> Operation:
    """Check a response status and JSON body against what the spec declares for the operation.

    Declared statuses are checked against their schema (with the known real-API relaxations).
    Undeclared error statuses must carry a Fly error body. Undeclared success statuses are errors.
    """
    op = match_operation(method, path)
    problems: list[str] = []
    components = _load().response_components
    declared, schema = _declared_response(op, status)
    is_lease = op.operation_id in _LEASE_OPS
    if status >= 400:
        # Lease endpoints, and lease conflicts (409) on any nonce-aware mutation, use the lease style.
        lease_style = is_lease or status == 409
        if lease_style and isinstance(json_body, Mapping) and json_body.get("status") == "error":
            problems += _schema_errors(LEASE_ERROR_BODY_SCHEMA, json_body, components, "body")
        elif declared and schema is not None:
            problems += _schema_errors(_convert(schema), json_body, components, "body")
            problems += _schema_errors(FLY_ERROR_BODY_SCHEMA, json_body, components, "body")
        else:
            problems += _schema_errors(FLY_ERROR_BODY_SCHEMA, json_body, components, "body")
    elif not declared:
        problems.append(f"status {status} is not declared for {op.operation_id}")
    elif is_lease and json_body is not None:
        # Reality: {"status": "success", "data": {...}} (spec models the lease flat).
        envelope = {
            "type": "object",
            "required": ["status", "data"],
            "properties": {"status": {"const": "success"}, "data": {"type": "object"}},
        }
        problems += _schema_errors(envelope, json_body, components, "body")
        if not problems and schema is not None and op.operation_id != "Machines_release_lease":
            problems += _schema_errors(_convert(schema), json_body["data"], components, "body.data")
    elif schema is not None:
        problems += _schema_errors(_convert(schema), json_body, components, "body")
    if problems:
        raise OpenAPIValidationError(f"response {status} to {method.upper()} {path}", problems)
    return op


__all__ = [
    "FLY_ERROR_BODY_SCHEMA",
    "LEASE_ERROR_BODY_SCHEMA",
    "OpenAPIValidationError",
    "Operation",
    "match_operation",
    "spec",
    "validate_request",
    "validate_response",
]
