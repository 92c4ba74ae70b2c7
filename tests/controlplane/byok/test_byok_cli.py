"""``controlplane byok check --provider ID`` (key on stdin, verdict as JSON, never the key)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import respx
import typer
from typer.testing import CliRunner

from controlplane.cli.byok import register
from tests.support.byok_fakes import valid_key


@pytest.fixture
def app() -> Iterator[typer.Typer]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    application = typer.Typer()
    application.command("noop")(lambda: None)  # keep "byok" a sub-command group
    register(application)
    yield application
    root.handlers, root.level = handlers, level  # the command configures logging on a test stream


def run(app: typer.Typer, args: list[str], key: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, input=key)
    return result.exit_code, result.stdout, result.stderr


def test_ok_verdict_as_json(app: typer.Typer) -> None:
    key = valid_key("anthropic")
    with respx.mock() as mock:
        route = mock.get("https://api.anthropic.com/v1/models").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        code, out, err = run(app, ["byok", "check", "--provider", "anthropic"], key + "\n")
    assert code == 0, err
    data = json.loads(out)
    assert data["provider"] == "anthropic" and data["verdict"] == "ok" and data["would_store"] == "usable"
    assert data["last4"] == key[-4:] and data["format_warnings"] == [] and data["retry_after"] is None
    assert route.calls.last.request.headers["x-api-key"] == key
    assert key not in out and key not in err


def test_refused_verdict_still_exits_zero_and_redacts_the_echo(app: typer.Typer) -> None:
    key = valid_key("xai")
    body = {"code": "Client specified an invalid argument", "error": f"Incorrect API key provided: {key}"}
    with respx.mock() as mock:
        mock.get("https://api.x.ai/v1/api-key").mock(return_value=httpx.Response(400, json=body))
        code, out, err = run(app, ["byok", "check", "--provider", "xai"], key)
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "invalid_key" and data["would_store"] == "refused"
    assert "rejected" in data["message"] and key not in out and key not in err


def test_rate_limited_reports_retry_after_and_warnings(app: typer.Typer) -> None:
    key = "m" * 20 + "1234"  # Mistral's format is unverified: only a warning
    with respx.mock() as mock:
        mock.get("https://api.mistral.ai/v1/models").mock(
            return_value=httpx.Response(
                429,
                json={"object": "error", "message": "rate limit", "type": "rate_limit_error"},
                headers={"retry-after": "3600"},
            )
        )
        code, out, _ = run(app, ["byok", "check", "--provider", "mistral"], key)
    data = json.loads(out)
    assert code == 0 and data["verdict"] == "rate_limited" and data["retry_after"] == 3600
    assert data["would_store"] == "unverified" and len(data["format_warnings"]) == 1


@pytest.mark.parametrize(
    ("args", "stdin", "field"),
    [
        (["--provider", "acme"], "whatever-key-123456", "--provider"),
        (["--provider", "openai"], "", "key (stdin)"),
        (["--provider", "openai"], "  \n", "key (stdin)"),
        (["--provider", "openai"], "sk-" + "admin-" + "z" * 40, "key (stdin)"),
        (["--provider", "google"], "not a key at all", "key (stdin)"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    app: typer.Typer, args: list[str], stdin: str, field: str
) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route().mock(return_value=httpx.Response(200, json={}))
        code, out, err = run(app, ["byok", "check", *args], stdin)
    assert code == 2 and out == "" and f"error: {field}:" in err
    assert route.call_count == 0  # nothing reached a provider
    if stdin.strip():
        assert stdin.strip() not in err


def test_the_key_is_never_accepted_on_the_command_line(app: typer.Typer) -> None:
    code, _, err = run(app, ["byok", "check", "--provider", "openai", "--key", valid_key("openai")], "")
    assert code == 2 and valid_key("openai") not in err


def test_unproven_minimax_key_reports_its_flags(app: typer.Typer) -> None:
    key = valid_key("minimax")
    with respx.mock() as mock:
        mock.get("https://api.minimax.io/anthropic/v1/models").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        mock.get("https://api.minimax.io/v1/token_plan/remains").mock(
            return_value=httpx.Response(404, json={})
        )
        code, out, err = run(app, ["byok", "check", "--provider", "minimax"], key)
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "unknown" and data["would_store"] == "unverified"
    assert "unproven" in data["flags"] and "does not confirm keys" in data["message"]
    assert key not in out and key not in err
