"""Guard: no plaintext secret reaches log output, exception messages, audit details or the reprs of
models and settings."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.db.models import AuditLog, Channel, ProviderKey, Secret, Tenant
from controlplane.logging import configure_logging
from controlplane.redaction import MASK, redact_text, redact_value, register_secret
from controlplane.settings import load_settings

# Built at run time so that no credential-shaped literal is committed.
ANTHROPIC = "sk-ant-api03-" + "Q" * 93 + "AA"
OPENAI = "sk-proj-" + "Z9" * 30
GEMINI = "AIza" + "b" * 35
GROQ = "gsk_" + "c" * 52
XAI = "xai-" + "d" * 80
STRIPE = "sk_" + "live_" + "e" * 24
FLY = "Fly" + "V1 fm2_" + "f" * 40
TELEGRAM = "123456789:" + "g" * 35
OPAQUE = "opaque-registered-secret-value-42"  # no recognisable shape: caught by registration


@pytest.fixture
def log_output() -> io.StringIO:
    out = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=out)
    yield out
    configure_logging(level="INFO", fmt="json")


@pytest.mark.parametrize("secret", [ANTHROPIC, OPENAI, GEMINI, GROQ, XAI, STRIPE, FLY, TELEGRAM])
def test_secret_shapes_never_reach_logs(log_output: io.StringIO, secret: str) -> None:
    log = structlog.get_logger("test")
    log.info("saving key", key=secret)
    log.info(f"inline {secret} in the event text")
    log.warning("nested", detail={"headers": {"x-api-key": secret}, "list": [secret]})
    logging.getLogger("httpx").warning("HTTP Request: GET https://api.example/v1?key=%s", secret)
    try:
        raise RuntimeError(f"provider echoed {secret}")
    except RuntimeError:
        log.exception("call failed")
    text = log_output.getvalue()
    assert secret not in text
    assert secret[-20:] not in text
    assert MASK in text
    for line in text.strip().splitlines():
        json.loads(line)  # every line is a JSON object


def test_registered_secrets_are_redacted_even_without_a_shape(log_output: io.StringIO) -> None:
    register_secret(OPAQUE)
    structlog.get_logger("t").info("value", v=f"prefix {OPAQUE} suffix")
    logging.getLogger("other").error("stdlib %s", OPAQUE)
    assert OPAQUE not in log_output.getvalue()


def test_sensitive_field_names_are_masked(log_output: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "cfg",
        api_key="plain-but-named",
        token="tkn-plain",
        password="pw-plain",
        last4="1234",
        provider="openai",
    )
    text = log_output.getvalue()
    for value in ("plain-but-named", "tkn-plain", "pw-plain"):
        assert value not in text
    assert '"last4": "1234"' in text and '"provider": "openai"' in text


def test_console_format_is_redacted_too() -> None:
    out = io.StringIO()
    configure_logging(level="INFO", fmt="console", stream=out)
    try:
        structlog.get_logger("t").info("hello", key=OPENAI)
    finally:
        configure_logging(level="INFO", fmt="json")
    assert OPENAI not in out.getvalue() and "hello" in out.getvalue()


def test_model_reprs_show_ids_only() -> None:
    secret = Secret(id="s1", tenant_id="t1", name="provider:openai", key_id="k2", value="v1:k2:" + "A" * 60)
    key = ProviderKey(
        id="pk1",
        tenant_id="t1",
        provider="openai",
        secret_id="s1",
        last4="WXYZ",
        fingerprint="f" * 64,
        message=f"provider said {OPENAI}",
    )
    tenant = Tenant(id="t1", external_id="user@example.com", plan="pro", region="iad")
    channel = Channel(id="c1", tenant_id="t1", kind="telegram", settings={"allow_from": ["1"]})
    for obj, visible in ((secret, "s1"), (key, "pk1"), (tenant, "t1"), (channel, "c1")):
        text = repr(obj) + str(obj)
        assert visible in text
        for hidden in ("v1:k2:", OPENAI, "user@example.com", "WXYZ", "allow_from"):
            assert hidden not in text


def test_settings_repr_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    ring = "k1:" + base64.b64encode(bytes(range(32))).decode()
    monkeypatch.setenv("CP_VAULT_KEYS", ring)
    monkeypatch.setenv("CP_FLY_API_TOKEN", FLY)
    monkeypatch.setenv("CP_STRIPE_SECRET_KEY", STRIPE)
    s = load_settings()
    for text in (repr(s), str(s), json.dumps(s.public_view())):
        for value in (ring.split(":", 1)[1], FLY, STRIPE):
            assert value not in text


def test_audit_details_are_redacted() -> None:
    from controlplane import audit

    class FakeSession:
        def __init__(self) -> None:
            self.rows: list[AuditLog] = []

        def add(self, row: AuditLog) -> None:
            self.rows.append(row)

    session = FakeSession()
    audit.record(
        session,
        actor="api",
        action="key_saved",
        tenant_id="t1",  # type: ignore[arg-type]
        reason=f"saved {ANTHROPIC}",
        before={"api_key": "named-secret"},
        after={"provider": "anthropic", "last4": "ABAA", "echo": ANTHROPIC},
    )
    row = session.rows[0]
    dumped = json.dumps({"reason": row.reason, "before": row.before, "after": row.after})
    assert ANTHROPIC not in dumped and "named-secret" not in dumped
    assert row.after["provider"] == "anthropic" and row.after["last4"] == "ABAA"


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=80),
    prefix=st.text(max_size=20),
    suffix=st.text(max_size=20),
)
def test_any_registered_secret_is_removed_from_any_text(secret: str, prefix: str, suffix: str) -> None:
    register_secret(secret)
    assert secret not in redact_text(prefix + secret + suffix)
    assert secret not in json.dumps(redact_value({"a": [prefix + secret], "b": {"c": secret + suffix}}))


def test_registered_secret_block_redacts_then_forgets() -> None:
    from controlplane.redaction import registered_secret

    value = "shapeless" + "Q7" * 12  # like a Mistral or Cohere key: no recognisable prefix
    assert redact_text(f"x {value} y") == f"x {value} y"
    with registered_secret(value):
        with registered_secret(value):  # a second holder of the same value
            pass
        assert value not in redact_text(f"x {value} y")  # still held by the outer block
    assert redact_text(f"x {value} y") == f"x {value} y"  # forgotten: not kept alive


def test_structlog_is_redacted_before_logging_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    code = (
        "import controlplane, structlog; "
        f"structlog.get_logger().info('early', key={OPENAI!r}, other='x {GROQ} y')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "early" in done.stderr
    assert OPENAI not in done.stderr + done.stdout and GROQ not in done.stderr + done.stdout
