"""Control-plane settings (pydantic-settings, prefix ``CP_``, optional ``.env`` file).

Every setting is documented in the README's configuration table. Secret settings are ``SecretStr``
and never printed: ``repr()`` shows ``**********`` and :meth:`Settings.public_view` masks them.
A missing or malformed setting fails at start-up with :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents_config.inputs import InputRefused, Limits, decode_text, path_or_given, read_file
from agents_config.providers import PROVIDER_IDS
from controlplane.redaction import VAULT_KEY_ID
from controlplane.url_redaction import redact_url

ENV_PREFIX = "CP_"

#: Provider ids with an overridable validation base URL (``CP_<ID>_BASE_URL``).
#: (re-exported from agents_config.providers, the single provider table)


class SettingsError(RuntimeError):
    """Raised when the configuration is missing or malformed. The message names each variable."""


def _default_database_url() -> str:
    return f"sqlite+aiosqlite:///{Path.cwd() / 'controlplane.db'}"


def parse_key_ring(raw: str) -> list[tuple[str, bytes]]:
    """Parse ``"k2:<base64>,k1:<base64>"`` into ``[(key_id, 32 bytes), ...]``; the first is primary.

    Errors never include key material, only positions and key ids.
    """
    entries: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValueError("the key ring is empty; expected 'id:<base64 32 bytes>[,id:<base64>...]'")
    for position, part in enumerate(parts, start=1):
        key_id, sep, b64 = part.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise ValueError(f"entry {position} is not 'id:<base64>'")
        if not re.fullmatch(VAULT_KEY_ID, key_id):
            raise ValueError(f"entry {position}: key id must be 1-32 ASCII letters, digits, '-' or '_'")
        if key_id in seen:
            raise ValueError(f"entry {position}: key id {key_id!r} appears twice")
        try:
            material = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"entry {position} (key id {key_id!r}) is not valid base64") from None
        if len(material) != 32:
            raise ValueError(
                f"entry {position} (key id {key_id!r}) must decode to 32 bytes for AES-256, "
                f"got {len(material)}"
            )
        seen.add(key_id)
        entries.append((key_id, material))
    return entries


def parse_platform_keys(raw: str) -> dict[str, SecretStr]:
    """Parse ``"moonshot=<key>,minimax=<key>"``; errors name positions and provider ids, never keys."""
    keys: dict[str, SecretStr] = {}
    for position, part in enumerate((p.strip() for p in raw.split(",") if p.strip()), start=1):
        provider, sep, key = part.partition("=")
        provider = provider.strip()
        if not sep or not key.strip():
            raise ValueError(f"entry {position} is not 'provider=key'")
        if provider not in PROVIDER_IDS:
            raise ValueError(f"entry {position}: unknown provider; known: {', '.join(PROVIDER_IDS)}")
        if provider in keys:
            raise ValueError(f"entry {position}: provider {provider} appears twice")
        keys[provider] = SecretStr(key.strip())
    return keys


class Settings(BaseSettings):
    """All settings of the control plane. See README "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # --- database ---------------------------------------------------------------------------
    database_url: str = Field(
        default_factory=_default_database_url,
        repr=False,  # may carry a password; public_view() shows it redacted
        description="SQLAlchemy URL. sqlite:///file.db (default: ./controlplane.db) or "
        "postgresql://user@host/db; drivers are chosen automatically (aiosqlite, asyncpg).",
    )
    database_echo: bool = Field(default=False, description="Log every SQL statement (debugging).")
    database_pool_size: int = Field(default=10, ge=1, le=200, description="PostgreSQL pool size.")

    # --- vault -----------------------------------------------------------------------------
    vault_keys: SecretStr | None = Field(
        default=None,
        description="Key ring 'k2:<base64>,k1:<base64>': AES-256 keys, the first is primary, the "
        "others decrypt-only. Generate one with `controlplane keys generate`.",
    )
    vault_fingerprint_key: SecretStr | None = Field(
        default=None,
        description="base64 32-byte HMAC key for key fingerprints. Set it so fingerprints stay "
        "stable across key rotations; if unset it is derived from the primary vault key.",
    )

    # --- Fly -------------------------------------------------------------------------------
    fly_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.machines.dev"),
        description="Fly Machines API base URL (without /v1), or the emulator's URL.",
    )
    fly_api_token: SecretStr | None = Field(
        default=None, description="Fly org token (FlyV1 macaroon or legacy Bearer token)."
    )
    fly_org: str = Field(default="personal", min_length=1, description="Fly organisation slug.")
    fly_default_region: str = Field(default="iad", min_length=3, description="Default region.")
    fly_app_prefix: str = Field(
        default="oc-",
        pattern=r"^[a-z][a-z0-9-]{0,19}$",
        description="Prefix of per-tenant Fly app names.",
    )
    openclaw_image: str = Field(
        default="ghcr.io/openclaw/openclaw:2026.9.6",
        min_length=3,
        description="Pinned OpenClaw image for tenants without an image pin (exact tag or digest).",
    )
    fly_max_concurrency: int = Field(
        default=32, ge=1, le=512, description="Global cap on in-flight Fly API calls."
    )

    fly_rate_limit_scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Multiplies the client's pacing rates (Fly's published limits); raise it only when Fly "
        "raised your organisation's limits.",
    )
    fly_fallback_regions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated regions a NEW tenant moves to, in order, when its region has no "
        "capacity or quota left (a tenant with a volume never moves).",
    )
    gateway_url_template: str = Field(
        default="https://{app}.fly.dev",
        description="Where the control plane reaches a tenant's gateway probes; {app} is the app name.",
    )

    # --- workers ----------------------------------------------------------------------------
    worker_concurrency: int = Field(
        default=16, ge=1, le=1024, description="Reconciles run at once per worker."
    )
    worker_lease_seconds: float = Field(
        default=60.0, ge=5, le=3600, description="Lease of a claimed tenant (renewed every third of it)."
    )
    worker_shutdown_seconds: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="On SIGTERM, how long runs in flight may finish before their leases are given back.",
    )
    worker_metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Worker /metrics and /healthz port (0 = off)."
    )
    resync_interval_seconds: float = Field(
        default=60.0, ge=1, description="How often the org-wide listing is compared with desired state."
    )
    full_resync_hours: float = Field(
        default=6.0,
        ge=0,
        description="Every tenant is reconciled in full this often, spread out (0 = never).",
    )
    reconcile_wait_seconds: float = Field(
        default=20.0, gt=0, le=60, description="Longest wait for a machine state inside one reconcile."
    )
    rollout_tick_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the worker's rollout driver looks at a rollout."
    )
    rollout_health_timeout_seconds: float = Field(
        default=180.0,
        gt=0,
        le=3600,
        description="After a rollout's update reached a machine: how long it may take to be started and "
        "pass /readyz before it counts as failed (paused and rolled back).",
    )
    rollout_item_timeout_seconds: float = Field(
        default=900.0,
        gt=0,
        le=86400,
        description="How long the reconciler may take to apply a rollout's image to one machine before it "
        "counts as failed.",
    )
    rollout_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Lease of the worker driving a rollout; another worker takes over when it expires.",
    )
    tenant_retention_days: float = Field(
        default=7.0, ge=0, description="Days a cancelled or deleted tenant's resources are kept (stopped)."
    )
    # --- health: the sweep, banners, periodic housekeeping (workers/health.py) ----------------
    health_sweep_interval_seconds: float = Field(
        default=60.0, ge=1, description="How often the health sweep reads the fleet and probes agents."
    )
    health_introspect_interval_seconds: float = Field(
        default=3600.0,
        ge=1,
        description="How often each running agent is asked (exec) about its keys, channels and usage; "
        "at once when a probe or an observation looks wrong.",
    )
    health_probe_concurrency: int = Field(
        default=64, ge=1, le=1024, description="/readyz probes in flight at once during a sweep."
    )
    health_probe_timeout_seconds: float = Field(
        default=3.0, gt=0, le=30, description="Timeout of one /readyz probe."
    )
    health_exec_concurrency: int = Field(
        default=16, ge=1, le=256, description="Agents introspected (exec) at once during a sweep."
    )
    health_max_inspect_per_sweep: int = Field(
        default=1000,
        ge=1,
        description="Most agents whose events are read or who are asked (exec) in one sweep; trouble "
        "first, the rest next sweep.",
    )
    health_list_overlap_seconds: float = Field(
        default=120.0,
        ge=0,
        description="How far back each listing reaches before the last one (Fly's listing is "
        "eventually consistent).",
    )
    health_full_list_every: int = Field(
        default=60, ge=1, description="Every Nth sweep of a process lists the whole fleet again."
    )
    health_crash_window_seconds: float = Field(
        default=600.0, gt=0, description="Window in which exits of a machine count as a crash loop."
    )
    health_crash_exits: int = Field(
        default=3, ge=1, description="Exits within the window that make a crash loop."
    )
    banner_thresholds: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="Consecutive bad observations before a banner rises, per kind: "
        "'agent_down=3,channel_down=3' (defaults in controlplane/banners.py).",
    )
    key_revalidation_interval_seconds: float = Field(
        default=300.0, ge=1, description="How often keys due for a re-check are re-validated."
    )
    key_revalidation_batch: int = Field(
        default=200, ge=1, le=10_000, description="Most keys re-validated by one run of that job."
    )
    audit_retention_days: float = Field(
        default=400.0, ge=0, description="Audit rows older than this are deleted daily (0 = kept forever)."
    )
    job_runs_retention_days: float = Field(
        default=14.0, gt=0, description="Finished periodic-job periods kept this long."
    )
    reencrypt_batch: int = Field(
        default=500, ge=1, le=10_000, description="Secrets re-encrypted per run after a vault key rotation."
    )
    platform_keys: SecretStr | None = Field(
        default=None,
        description="The operator's platform (operator-paid) keys: 'provider=key,provider=key'.",
    )
    platform_proxy_url: str | None = Field(
        default=None, description="The operator's metering proxy for platform keys (https URL)."
    )

    # --- plans, billing, API ---------------------------------------------------------------
    plan_catalog: Path | None = Field(
        default=None,
        description="Path to a plan catalog TOML; default: the catalog shipped with the package.",
    )
    stripe_secret_key: SecretStr | None = Field(default=None, description="Stripe API key.")
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Stripe webhook endpoint secret (whsec_...); several, comma-separated, while "
        "rotating (a delivery signed with any of them is accepted).",
    )
    stripe_api_base: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.stripe.com"),
        description="Stripe API base URL; tests and the demo point it at the local fake.",
    )
    billing_grace_days: float = Field(
        default=3, ge=0, le=60, description="Days a past_due subscription keeps its agent running."
    )
    mailer_webhook_url: AnyHttpUrl | None = Field(
        default=None, description="The operator's mailer: billing notices are POSTed here, signed."
    )
    mailer_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing the notices sent to the mailer webhook."
    )
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated service tokens accepted by the dashboard API.",
    )
    api_max_body_bytes: int = Field(
        default=262_144,
        ge=1024,
        le=16_777_216,
        description="Largest request body the dashboard API reads (bytes); larger ones get 413 "
        "before any parsing.",
    )

    # --- BYOK provider base URL overrides (CP_<PROVIDER>_BASE_URL) --------------------------
    anthropic_base_url: AnyHttpUrl | None = None
    openai_base_url: AnyHttpUrl | None = None
    google_base_url: AnyHttpUrl | None = None
    groq_base_url: AnyHttpUrl | None = None
    openrouter_base_url: AnyHttpUrl | None = None
    mistral_base_url: AnyHttpUrl | None = None
    deepseek_base_url: AnyHttpUrl | None = None
    moonshot_base_url: AnyHttpUrl | None = None
    minimax_base_url: AnyHttpUrl | None = None
    cohere_base_url: AnyHttpUrl | None = None
    xai_base_url: AnyHttpUrl | None = None
    provider_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Timeout of one provider key-validation call."
    )

    # --- logging ---------------------------------------------------------------------------
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field(default="auto", description="auto (JSON unless on a terminal), json or console.")
    debug_log: Path | None = Field(
        default=None,
        description="File (created 0600) where a command writes the redacted traceback of an unexpected "
        "failure; default $XDG_STATE_HOME/controlplane/debug.log (~/.local/state/...).",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from controlplane.db.urls import normalise_database_url

        return normalise_database_url(value)

    @field_validator("vault_keys")
    @classmethod
    def _check_vault_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_key_ring(value.get_secret_value())
        return value

    @field_validator("vault_fingerprint_key")
    @classmethod
    def _check_fingerprint_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                raw = base64.b64decode(value.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be base64") from None
            if len(raw) < 32:
                raise ValueError("must decode to at least 32 bytes")
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _check_webhook_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for position, secret in enumerate(value.get_secret_value().split(","), start=1):
                if not secret.strip().startswith("whsec_"):
                    raise ValueError(f"secret number {position} must start with 'whsec_'")
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("fly_fallback_regions", mode="before")
    @classmethod
    def _split_regions(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [r.strip() for r in value.split(",") if r.strip()]
        return value

    @field_validator("fly_fallback_regions")
    @classmethod
    def _check_regions(cls, value: list[str]) -> list[str]:
        for position, region in enumerate(value, start=1):
            if not (len(region) == 3 and region.isascii() and region.isalpha() and region.islower()):
                raise ValueError(f"entry {position} is not a Fly region code (three lower-case letters)")
        return value

    @field_validator("banner_thresholds", mode="before")
    @classmethod
    def _parse_thresholds(cls, value: Any) -> Any:
        if isinstance(value, str):
            parsed: dict[str, Any] = {}
            for part in (p.strip() for p in value.split(",")):
                if not part:
                    continue
                kind, sep, count = part.partition("=")
                if not sep:
                    raise ValueError(f"{part!r} is not kind=count")
                parsed[kind.strip()] = count.strip()
            return parsed
        return value

    @field_validator("banner_thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, int]) -> dict[str, int]:
        from controlplane.enums import BannerKind

        kinds = {k.value for k in BannerKind}
        for kind, count in value.items():
            if kind not in kinds:
                raise ValueError(f"unknown banner kind {kind!r}")
            if count < 1:
                raise ValueError(f"{kind}: the threshold must be at least 1")
        return value

    @field_validator("gateway_url_template")
    @classmethod
    def _check_gateway_template(cls, value: str) -> str:
        if "{app}" not in value or not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL containing {app}")
        return value

    @field_validator("platform_keys")
    @classmethod
    def _check_platform_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_platform_keys(value.get_secret_value())
        return value

    @field_validator("api_tokens")
    @classmethod
    def _check_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        for i, token in enumerate(value, start=1):
            if len(token.get_secret_value()) < 16:
                raise ValueError(f"token number {i} must have at least 16 characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper

    @field_validator("log_format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in {"auto", "json", "console"}:
            raise ValueError("must be auto, json or console")
        return value

    @field_validator("plan_catalog")
    @classmethod
    def _check_catalog(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {path_or_given(value)}")
        return value

    # ----------------------------------------------------------------------------------------
    def key_ring(self) -> list[tuple[str, bytes]]:
        """The parsed vault key ring; raises :class:`SettingsError` naming CP_VAULT_KEYS if unset."""
        if self.vault_keys is None:
            raise SettingsError(
                "CP_VAULT_KEYS is not set: the vault needs a key ring "
                "(generate one with `controlplane keys generate`)"
            )
        return parse_key_ring(self.vault_keys.get_secret_value())

    def platform_key_map(self) -> dict[str, SecretStr]:
        """provider id -> the operator's platform key (empty when none is configured)."""
        if self.platform_keys is None:
            return {}
        return parse_platform_keys(self.platform_keys.get_secret_value())

    def stripe_webhook_secrets(self) -> list[str]:
        """The webhook signing secrets in effect (CP_STRIPE_WEBHOOK_SECRET, comma-separated)."""
        if self.stripe_webhook_secret is None:
            return []
        return [s.strip() for s in self.stripe_webhook_secret.get_secret_value().split(",") if s.strip()]

    def provider_base_url(self, provider: str) -> str | None:
        """The operator's base URL override for ``provider``, if any."""
        if provider not in PROVIDER_IDS:
            raise KeyError(provider)
        value = getattr(self, f"{provider}_base_url")
        return str(value).rstrip("/") if value is not None else None

    def public_view(self) -> dict[str, str]:
        """Every setting as ``CP_NAME -> display string``, secrets masked. Safe to print."""
        view: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            env = f"{ENV_PREFIX}{name.upper()}"
            if isinstance(value, SecretStr):
                view[env] = "(set, hidden)"
            elif isinstance(value, list) and value and isinstance(value[0], SecretStr):
                view[env] = f"({len(value)} set, hidden)"
            elif value is None or value == []:
                view[env] = "(unset)"
            elif name == "database_url":
                from controlplane.db.urls import redact_database_url

                view[env] = redact_database_url(value)
            else:
                text = str(value)
                view[env] = redact_url(text) if "://" in text else text
        return view


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else "?"
        env = f"{ENV_PREFIX}{field.upper()}"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{env}: {msg}")
    return "invalid configuration: " + "; ".join(lines)


#: The largest ``.env`` read (it holds a few dozen settings).
_ENV_FILE_LIMITS = Limits(max_bytes=1 << 20)


def _check_env_file(path: Path) -> None:
    """Refuse an ``.env`` that is not UTF-8 text or is endless, before pydantic-settings reads it."""
    if not path.exists():
        return
    try:
        decode_text(read_file(path, _ENV_FILE_LIMITS), str(path))
    except InputRefused as exc:
        raise SettingsError(str(exc)) from None


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment (and ``.env``), turning validation errors into
    one :class:`SettingsError` that names every bad variable and never echoes its value."""
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    if isinstance(env_file, (str, Path)):
        _check_env_file(Path(env_file))
    try:
        return Settings(**overrides)
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{env_file}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    except ValidationError as exc:
        raise SettingsError(_format_validation_error(exc)) from None
    except json.JSONDecodeError as exc:  # malformed complex value in the environment
        raise SettingsError(f"invalid configuration: {exc.msg}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, loaded once."""
    return load_settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests, or after changing the environment)."""
    get_settings.cache_clear()


__all__ = [
    "ENV_PREFIX",
    "PROVIDER_IDS",
    "Settings",
    "SettingsError",
    "get_settings",
    "load_settings",
    "parse_key_ring",
    "parse_platform_keys",
    "reset_settings_cache",
]
