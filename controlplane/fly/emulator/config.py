"""Machine config as Fly stores it: unknown fields dropped (driven by Fly's OpenAPI schema), guest
defaults filled and validated, durations required as strings, autostop re-encoded for responses."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from controlplane.fly.emulator.errors import ApiError, bad_request

SPEC_FILE = "fly_machines_openapi.json"

SHARED_CPUS = frozenset({1, 2, 4, 6, 8})
PERFORMANCE_CPUS = frozenset({1, 2, 4, 6, 8, 10, 12, 14, 16, 32, 64, 128})
RESTART_POLICIES = frozenset({"no", "always", "on-failure", "spot-price"})
REGIONS = frozenset(
    {
        "ams",
        "arn",
        "atl",
        "bog",
        "bom",
        "bos",
        "cdg",
        "den",
        "dfw",
        "ewr",
        "eze",
        "fra",
        "gdl",
        "gig",
        "gru",
        "hkg",
        "iad",
        "jnb",
        "lax",
        "lhr",
        "mad",
        "mia",
        "nrt",
        "ord",
        "otp",
        "phx",
        "qro",
        "scl",
        "sea",
        "sin",
        "sjc",
        "syd",
        "waw",
        "yul",
        "yyz",
    }
)
_DURATION_FIELDS = ("interval", "timeout", "grace_period")


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    text = resources.files("controlplane.fly.emulator").joinpath(SPEC_FILE).read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def openapi_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = openapi_document()["components"]["schemas"]
    return schemas


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = openapi_schemas()
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in schema and "properties" not in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(_resolve(part).get("properties", {}))
        return merged
    return schema


def _is_struct(schema: dict[str, Any]) -> bool:
    return "properties" in _resolve(schema)


def strip_unknown(value: Any, schema: dict[str, Any]) -> Any:
    """Drop fields the schema does not know, recursively, as Fly's JSON decoding does; a ``null``
    where a list or map holds structs decodes, as in Go, to an empty struct."""
    schema = _resolve(schema)
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):
                empty: dict[str, Any] | None = {} if _is_struct(extra) else None
                return {k: strip_unknown(empty if v is None else v, extra) for k, v in value.items()}
            return value
        return {k: strip_unknown(v, props[k]) for k, v in value.items() if k in props}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        item_empty: dict[str, Any] | None = {} if _is_struct(schema["items"]) else None
        return [strip_unknown(item_empty if item is None else item, schema["items"]) for item in value]
    return value


def _encode_autostop(value: Any) -> bool | str:
    if value in (False, "off", None):
        return False
    if value in (True, "stop"):
        return True
    if value == "suspend":
        return "suspend"
    raise bad_request(f"invalid autostop value {value!r}: expected off, stop or suspend")


def _check_duration(where: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise bad_request(f'invalid duration for {where}: expected a string like "15s", got {value!r}')


def _check_port(where: str, value: Any) -> None:
    if value is not None and not (isinstance(value, int) and 0 < value <= 65535):
        raise bad_request(f"invalid {where}: must be a port number between 1 and 65535")


def _validate_guest(guest: dict[str, Any]) -> None:
    kind = guest.get("cpu_kind", "shared")
    cpus = guest.get("cpus", 1)
    memory = guest.get("memory_mb", 256)
    if kind not in ("shared", "performance"):
        raise bad_request(f"invalid cpu_kind {kind!r}")
    if not isinstance(cpus, int) or not isinstance(memory, int):
        raise bad_request("guest.cpus and guest.memory_mb must be integers")
    if kind == "shared":
        allowed, step, low, high = SHARED_CPUS, 256, 256, 2048
    else:
        allowed, step, low, high = PERFORMANCE_CPUS, 1024, 2048, 8192
    if cpus not in allowed:
        raise bad_request(f"invalid number of CPUs for {kind} guest: {cpus}")
    if memory % step != 0:
        raise bad_request(f"invalid memory size {memory} MB: must be a multiple of {step} MB")
    if memory < low * cpus or memory > high * cpus:
        raise bad_request(
            f"invalid memory size {memory} MB for {cpus}x {kind} CPU: must be between {low * cpus} and {high * cpus} MB"
        )


def normalize_config(raw: Any) -> dict[str, Any]:
    """Validate a MachineConfig from a create/update body and return what Fly would store."""
    if not isinstance(raw, dict):
        raise bad_request("config is required and must be an object")
    config: dict[str, Any] = strip_unknown(
        copy.deepcopy(raw), {"$ref": "#/components/schemas/fly.MachineConfig"}
    )
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        raise bad_request("invalid config: image is required")
    guest = config.get("guest") or {}
    if config.get("size") and config.get("guest"):
        raise bad_request("config.size and config.guest are mutually exclusive")
    guest = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, **guest}
    _validate_guest(guest)
    config["guest"] = guest
    restart = config.get("restart")
    if restart is not None and restart.get("policy") not in RESTART_POLICIES:
        raise bad_request(f"invalid restart policy {restart.get('policy')!r}")
    for name, check in (config.get("checks") or {}).items():
        for field_name in _DURATION_FIELDS:
            _check_duration(f"checks.{name}.{field_name}", check.get(field_name))
    stop_config = config.get("stop_config") or {}
    _check_duration("stop_config.timeout", stop_config.get("timeout"))
    for name, check in (config.get("checks") or {}).items():
        _check_port(f"checks.{name}.port", check.get("port"))
    for service in config.get("services") or []:
        _check_port("services.internal_port", service.get("internal_port"))
        for port in service.get("ports") or []:
            for field_name in ("port", "start_port", "end_port"):
                _check_port(f"services.ports.{field_name}", port.get(field_name))
        if "autostop" in service:
            service["autostop"] = _encode_autostop(service["autostop"])
        for check in service.get("checks") or []:
            for field_name in _DURATION_FIELDS:
                _check_duration("services.checks." + field_name, check.get(field_name))
    for key in ("env", "metadata"):
        values = config.get(key)
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            raise bad_request(f"config.{key} must map strings to strings")
    return config


def validate_region(region: str) -> None:
    if region not in REGIONS:
        raise ApiError(422, f"invalid region {region!r}", "invalid_region")


def image_ref(image: str) -> dict[str, Any]:
    """Split an image reference the way Fly reports it in ``image_ref``."""
    import hashlib

    ref, _, digest = image.partition("@")
    first, slash, rest = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, remainder = first, rest
    else:
        registry, remainder = "docker-hub-mirror.fly.io", ref if slash else f"library/{ref}"
    repository, colon, tag = (
        remainder.rpartition(":") if ":" in remainder.split("/")[-1] else (remainder, "", "")
    )
    if not colon:
        repository, tag = remainder, "latest"
    if not digest:
        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
    return {"registry": registry, "repository": repository, "tag": tag, "digest": digest, "labels": {}}


def services_autostart(config: dict[str, Any]) -> bool:
    return any(bool(s.get("autostart")) for s in config.get("services") or [])
