"""The plan catalog: a typed model of the operator's plans, loaded from TOML.

The catalog is data. The default ships with the package (``catalogs/default.toml``); an operator points
``CP_PLAN_CATALOG`` at their own file and the caller passes that path to :func:`load_catalog`, the only
function in this package that reads a file. Every error names the plan and the field, e.g.
``plan 'pro': field 'max_channels': must be >= 0 or "unlimited"``.

Feature gates are NOT derived here: ask :class:`agents_config.gates.FeatureGates`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from agents_config.inputs import InputRefused, load_toml_file, name_or_given, parse_toml_bytes, path_part
from agents_config.models import MODELS
from agents_config.providers import PROVIDER_IDS

DEFAULT_CATALOG_RESOURCE = "default.toml"
PLAN_ID_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"

_SKILL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHARED_CPUS = (1, 2, 4, 6, 8)
_PERFORMANCE_CPUS = (1, 2, 4, 6, 8, 10, 12, 14, 16, 32, 64, 128)


class CatalogError(ValueError):
    """The catalog cannot be used. The message names the file, plan and field."""


class UnknownPlanError(KeyError):
    """A plan id that is not in the catalog."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown plan"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceCaps(_Strict):
    """Monthly caps the operator's service proxies enforce per tenant (0 = not included)."""

    web_searches_per_month: StrictInt = Field(ge=0)
    browser_minutes_per_month: StrictInt = Field(ge=0)
    emails_per_month: StrictInt = Field(ge=0)
    phone_minutes_per_month: StrictInt = Field(ge=0)


class UsageLimits(_Strict):
    """Limits on AI usage paid by the operator (platform-key plans). Omitted = no limit.

    Data only: OpenClaw 2026.9.6 has no per-day message or per-month token quota, so nothing in
    ``openclaw.json`` enforces these. The operator's metering proxy (``TenantSpec.platform_proxy_url``)
    is what counts and refuses; without a proxy they are not enforced on the tenant's machine.
    """

    messages_per_day: StrictInt | None = Field(default=None, ge=0)
    tokens_per_month: StrictInt | None = Field(default=None, ge=0)


class MachineSize(_Strict):
    """Fly guest and volume of the tenant's machine; obeys flyctl's guest rules."""

    cpu_kind: Literal["shared", "performance"] = "shared"
    cpus: StrictInt = Field(ge=1)
    memory_mb: StrictInt = Field(ge=256)
    volume_size_gb: StrictInt = Field(ge=1, le=500)

    @model_validator(mode="after")
    def _flyctl_rules(self) -> MachineSize:
        cpus_ok: tuple[int, ...]
        if self.cpu_kind == "shared":
            cpus_ok, step, per_cpu = _SHARED_CPUS, 256, (256, 2048)
        else:
            cpus_ok, step, per_cpu = _PERFORMANCE_CPUS, 1024, (2048, 8192)
        if self.cpus not in cpus_ok:
            raise ValueError(f"cpus: {self.cpu_kind} cpus must be one of {', '.join(map(str, cpus_ok))}")
        if self.memory_mb % step:
            raise ValueError(f"memory_mb: must be a multiple of {step} for {self.cpu_kind} cpus")
        low, high = per_cpu[0] * self.cpus, per_cpu[1] * self.cpus
        if not low <= self.memory_mb <= high:
            raise ValueError(
                f"memory_mb: must be between {low} and {high} for {self.cpus} {self.cpu_kind} cpus"
            )
        return self


class ModelPolicy(_Strict):
    """Which providers and models a plan allows, its default model and platform fallback."""

    allowed_providers: tuple[str, ...] | None = None  # None = every known provider
    allowed_models: tuple[str, ...] | None = None  # None = every model of the allowed providers
    default_model: str | None = None  # primary when the tenant chose none (if usable)
    platform_fallback: str | None = None  # model on the operator's key, last in the chain

    @field_validator("allowed_providers")
    @classmethod
    def _known_providers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for p in value:
                if p not in PROVIDER_IDS:
                    raise ValueError(f"unknown provider {name_or_given(p)}; known: {', '.join(PROVIDER_IDS)}")
            if len(set(value)) != len(value):
                raise ValueError("lists a provider twice")
        return value

    @field_validator("allowed_models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for ref in value:
                _check_model_ref(ref)
            if len(set(value)) != len(value):
                raise ValueError("lists a model twice")
        return value

    @field_validator("default_model", "platform_fallback")
    @classmethod
    def _known_model(cls, value: str | None) -> str | None:
        if value is not None:
            _check_model_ref(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelPolicy:
        if self.allowed_models is not None and self.allowed_providers is not None:
            for ref in self.allowed_models:
                if MODELS[ref].provider not in self.allowed_providers:
                    raise ValueError(
                        f"allowed_models: {name_or_given(ref)} is from a provider not in allowed_providers"
                    )
        if self.default_model is not None and not self.allows(self.default_model):
            raise ValueError("default_model: not among the allowed providers/models")
        return self

    def allows(self, ref: str) -> bool:
        model = MODELS.get(ref)
        if model is None:
            return False
        if self.allowed_providers is not None and model.provider not in self.allowed_providers:
            return False
        return self.allowed_models is None or ref in self.allowed_models


class ToolPolicy(_Strict):
    """OpenClaw ``tools`` baseline for the plan (the gates add feature-derived grants and denials).

    ``profile = "coding"`` includes ``group:runtime`` (``exec``): shell commands on the tenant's own VM.
    That is intended only for the top tier (see the catalog's comment); lower tiers deny it.
    """

    profile: Literal["minimal", "coding", "messaging", "full"] = "messaging"
    deny: tuple[str, ...] = ()
    also_allow: tuple[str, ...] = ()


def _check_model_ref(ref: str) -> None:
    if ref not in MODELS:
        raise ValueError(
            f"unknown model {name_or_given(ref)} (expected 'provider/model' from agents_config.models)"
        )


class Plan(_Strict):
    """One plan of the catalog. ``id`` is the TOML table name."""

    id: str = Field(pattern=PLAN_ID_PATTERN)
    display_name: str = Field(min_length=1)
    stripe_price_id: str = Field(pattern=r"^price_[A-Za-z0-9_]+$")
    monthly_price_cents: StrictInt = Field(ge=0)
    key_mode: Literal["byok", "platform"]
    requests_per_minute: StrictInt = Field(ge=1)
    max_channels: int | None  # None = unlimited ("unlimited" in TOML)
    cron: StrictBool
    custom_skills: StrictBool
    file_browser: StrictBool
    api_access: StrictBool
    sleep_when_idle: StrictBool
    heartbeat_every: str = Field(default="0m", pattern=r"^[0-9]+[smh]$")
    caps: ServiceCaps
    usage: UsageLimits = UsageLimits()
    machine: MachineSize
    models: ModelPolicy = ModelPolicy()
    tools: ToolPolicy = ToolPolicy()
    # Skills a plan WITHOUT custom skills may load (``agents.defaults.skills``); None there means [].
    # Plans with custom skills leave it unset: they load whatever the tenant installs.
    skills_allow: tuple[str, ...] | None = None

    @field_validator("skills_allow")
    @classmethod
    def _skill_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for name in value:
                if not _SKILL_NAME.match(name):
                    raise ValueError(
                        f"not a skill name: {name_or_given(name)} (expected {_SKILL_NAME.pattern})"
                    )
            if len(set(value)) != len(value):
                raise ValueError("lists a skill twice")
        return value

    @field_validator("max_channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        if value == "unlimited":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError('must be an integer >= 0 or "unlimited"')
        if value < 0:
            raise ValueError('must be >= 0 or "unlimited"')
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Plan:
        if self.key_mode == "platform" and self.models.default_model is None:
            raise ValueError("models.default_model: required when key_mode is 'platform'")
        if self.custom_skills and self.skills_allow is not None:
            raise ValueError(
                "skills_allow: only for plans without custom skills (custom skills load any skill)"
            )
        if self.key_mode == "byok" and self.heartbeat_every not in ("0m", "0s", "0h"):
            raise ValueError(
                "heartbeat_every: must be '0m' on BYOK plans (heartbeats spend the user's tokens)"
            )
        return self


class PlanCatalog(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    plans: dict[str, Plan]

    @model_validator(mode="after")
    def _non_empty(self) -> PlanCatalog:
        if not self.plans:
            raise ValueError("plans: the catalog has no plans")
        return self

    @property
    def plan_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.plans))

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise UnknownPlanError(
                f"unknown plan {name_or_given(plan_id)} in catalog {self.name!r}; known: {', '.join(self.plan_ids)}"
            ) from None


# --- loading -------------------------------------------------------------------------------------

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "string_type": "must be a string",
    "dict_type": "must be a table",
}


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(_MESSAGES.get(kind, err["msg"]))


def _quoted(part: str) -> str:
    return part if part.startswith("<") else repr(part)


def _format_error(err: dict[str, Any]) -> str:
    loc = [path_part(p) for p in err["loc"]]
    message = _describe(err)
    # A model-level validator reports "field: message" for the field it checked.
    if err["type"] == "value_error" and ": " in message and " " not in message.split(": ", 1)[0]:
        sub, message = message.split(": ", 1)
        loc = [*loc, *sub.split(".")]
    if len(loc) >= 2 and loc[0] == "plans":
        plan, field = loc[1], ".".join(loc[2:])
        if field:
            return f"plan {_quoted(plan)}: field {_quoted(field)}: {message}"
        return f"plan {_quoted(plan)}: {message}"
    if loc:
        return f"field {'.'.join(loc)!r}: {message}"
    return message


def parse_catalog(data: dict[str, Any], *, source: str = "<catalog>") -> PlanCatalog:
    """Validate already-parsed TOML data. Pure; raises :class:`CatalogError`."""
    header = data.get("catalog", {})
    plans = data.get("plans")
    unknown = sorted(set(data) - {"catalog", "plans"})
    if unknown:
        raise CatalogError(
            f"{source}: unknown top-level table(s): {', '.join(path_part(u) for u in unknown)}"
        )
    if not isinstance(header, dict):
        raise CatalogError(f"{source}: [catalog] must be a table")
    if not isinstance(plans, dict):
        raise CatalogError(f"{source}: [plans.<id>] tables are required")
    shaped: dict[str, Any] = {}
    for plan_id, body in plans.items():
        if not isinstance(body, dict):
            raise CatalogError(f"{source}: plan {name_or_given(plan_id)}: must be a table")
        if "id" in body:
            raise CatalogError(f"{source}: plan {name_or_given(plan_id)}: field 'id': set by the table name")
        shaped[plan_id] = {"id": plan_id, **body}
    try:
        return PlanCatalog.model_validate({**header, "plans": shaped})
    except ValidationError as exc:
        lines = [_format_error(dict(e)) for e in exc.errors(include_url=False)]
        raise CatalogError(f"{source}: " + "; ".join(lines)) from None


def parse_catalog_text(text: str, *, source: str = "<catalog>") -> PlanCatalog:
    """Parse and validate catalog TOML text within :mod:`agents_config.inputs`' limits. Pure;
    raises :class:`CatalogError` (with the line)."""
    try:
        data = parse_toml_bytes(text.encode("utf-8", "surrogatepass"), source)
    except InputRefused as exc:
        raise CatalogError(str(exc)) from None
    return parse_catalog(data, source=source)


def load_catalog(path: Path | None = None) -> PlanCatalog:
    """Load a plan catalog: ``path`` (an operator's file, e.g. from ``CP_PLAN_CATALOG``) or, when
    None, the default shipped with the package. The only I/O in ``agents_config``."""
    if path is None:
        # Next to this module (package data); works for regular, editable and namespace installs.
        resource = Path(__file__).with_name("catalogs") / DEFAULT_CATALOG_RESOURCE
        return parse_catalog_text(
            resource.read_text(encoding="utf-8"),
            source=f"agents_config/catalogs/{DEFAULT_CATALOG_RESOURCE}",
        )
    try:
        data = load_toml_file(path)
    except InputRefused as exc:
        raise CatalogError(str(exc)) from None
    return parse_catalog(data, source=str(path))


__all__ = [
    "CatalogError",
    "MachineSize",
    "ModelPolicy",
    "Plan",
    "PlanCatalog",
    "ServiceCaps",
    "ToolPolicy",
    "UnknownPlanError",
    "UsageLimits",
    "load_catalog",
    "parse_catalog",
    "parse_catalog_text",
]
