"""Settings: defaults, validation messages naming the variable, secrets never shown."""

from __future__ import annotations

import base64

import pytest

from controlplane.settings import SettingsError, load_settings, parse_key_ring

KEY = base64.b64encode(bytes(range(32))).decode()


def test_defaults_use_a_sqlite_file_in_the_working_directory(tmp_path) -> None:
    s = load_settings()
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'controlplane.db'}"
    assert str(s.fly_api_url).startswith("https://api.machines.dev")
    assert s.vault_keys is None


def test_postgres_urls_get_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_DATABASE_URL", "postgresql://u:pw@db.example:5432/cp")
    assert load_settings().database_url == "postgresql+asyncpg://u:pw@db.example:5432/cp"
    monkeypatch.setenv("CP_DATABASE_URL", "postgres://u@h/cp")
    assert load_settings().database_url.startswith("postgresql+asyncpg://")


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("CP_VAULT_KEYS", "k1:notbase64!!", "CP_VAULT_KEYS"),
        ("CP_VAULT_KEYS", "k1:" + base64.b64encode(b"short").decode(), "32 bytes"),
        ("CP_VAULT_KEYS", f"k1:{KEY},k1:{KEY}", "appears twice"),
        ("CP_VAULT_KEYS", f"{KEY}", "CP_VAULT_KEYS"),
        ("CP_DATABASE_URL", "mysql://x/y", "CP_DATABASE_URL"),
        ("CP_DATABASE_URL", "libsql://db.turso.io?token=x", "unknown libSQL URL option"),
        ("CP_FLY_API_URL", "not a url", "CP_FLY_API_URL"),
        ("CP_LOG_LEVEL", "LOUD", "CP_LOG_LEVEL"),
        ("CP_API_TOKENS", "tiny-token", "at least 16"),
        ("CP_PLAN_CATALOG", "/nonexistent/catalog.toml", "CP_PLAN_CATALOG"),
        ("CP_FLY_MAX_CONCURRENCY", "0", "CP_FLY_MAX_CONCURRENCY"),
        ("CP_ANTHROPIC_BASE_URL", "nope", "CP_ANTHROPIC_BASE_URL"),
    ],
)
def test_malformed_settings_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert env in message
    assert fragment.lower() in message.lower()
    if env in {"CP_VAULT_KEYS", "CP_API_TOKENS"}:
        assert value not in message  # the bad value is never echoed


def test_missing_vault_keys_named_when_needed() -> None:
    with pytest.raises(SettingsError, match="CP_VAULT_KEYS is not set"):
        load_settings().key_ring()


def test_key_ring_order_first_is_primary() -> None:
    other = base64.b64encode(bytes(32)).decode()
    ring = parse_key_ring(f"k2:{KEY}, k1:{other}")
    assert [kid for kid, _ in ring] == ["k2", "k1"]
    assert ring[0][1] == bytes(range(32))


def test_secrets_are_masked_in_repr_and_public_view(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "CP_VAULT_KEYS": f"k1:{KEY}",
        "CP_FLY_API_TOKEN": "fm2_supersecretflytoken000",
        "CP_STRIPE_SECRET_KEY": "sk_test_secretstripe0000000",
        "CP_STRIPE_WEBHOOK_SECRET": "whsec_secretwebhook00000000",
        "CP_API_TOKENS": "dashboard-token-aaaaaaaaaaaa,dashboard-token-bbbbbbbbbbbb",
        "CP_DATABASE_URL": "postgresql://cp:dbpassword123@db:5432/cp",
    }
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    shown = repr(s) + str(s) + repr(s.public_view()) + s.model_dump_json(exclude={"database_url"})
    for value in [
        KEY,
        "fm2_supersecretflytoken000",
        "sk_test_secretstripe0000000",
        "whsec_secretwebhook00000000",
        "dashboard-token-aaaaaaaaaaaa",
        "dbpassword123",
    ]:
        assert value not in shown
    view = s.public_view()
    assert view["CP_FLY_API_TOKEN"] == "(set, hidden)"
    assert view["CP_API_TOKENS"] == "(2 set, hidden)"
    assert "***" in view["CP_DATABASE_URL"]


def test_provider_base_url_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/")
    s = load_settings()
    assert s.provider_base_url("openai") == "http://127.0.0.1:9999/v1"
    assert s.provider_base_url("anthropic") is None
    with pytest.raises(KeyError):
        s.provider_base_url("nope")


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CP_FLY_ORG=acme\n")
    assert load_settings().fly_org == "acme"
