"""Token header forms and redaction: the token never appears in logs, exceptions or reprs."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx
import structlog
from pydantic import SecretStr

from controlplane.fly import FlyClient, FlyConfigError, FlyNotFound, FlyServerError, authorization_value
from controlplane.fly.auth import FlyAuth
from controlplane.settings import load_settings
from tests.support.fly_fakes import BASE, TOKEN, FakeClock, ValidatingTransport, error, machine_json

FLYV1 = "Fly" + "V1"  # built at run time: no credential-shaped literal in the tree


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("fm1r_abc", f"{FLYV1} fm1r_abc"),
        ("fm1a_abc", f"{FLYV1} fm1a_abc"),
        ("fm2_abc,fm2_def", f"{FLYV1} fm2_abc,fm2_def"),
        (f"{FLYV1} fm2_abc", f"{FLYV1} fm2_abc"),
        ("legacy0123", "Bearer legacy0123"),
        ("  legacy0123\n", "Bearer legacy0123"),
    ],
)
def test_authorization_header_forms(token: str, header: str) -> None:
    assert authorization_value(token.strip()) == header


@pytest.mark.parametrize(("token", "scheme"), [("fm2_xyz", "FlyV1"), ("plainlegacy", "Bearer")])
async def test_header_is_sent(token: str, scheme: str, router: respx.Router, clock: FakeClock) -> None:
    router.get("/apps/a").respond(200, json={"name": "a"})
    transport = ValidatingTransport(httpx.MockTransport(router.async_handler), clock)
    async with FlyClient(token=SecretStr(token), base_url=BASE, transport=transport, clock=clock) as fly:
        await fly.get_app("a")
    assert transport.sent[0].headers["authorization"] == f"{scheme} {token}"
    assert str(transport.sent[0].headers.get("user-agent", "")).startswith("openclaw-fleet")


def test_empty_or_multiline_token_rejected_without_echo() -> None:
    with pytest.raises(FlyConfigError):
        FlyClient(token="   ")
    with pytest.raises(FlyConfigError) as info:
        FlyClient(token="fm2_abc\nInjected: header")
    assert "fm2_abc" not in str(info.value)


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_FLY_API_TOKEN", TOKEN)
    monkeypatch.setenv("CP_FLY_API_URL", "http://127.0.0.1:4280")
    monkeypatch.setenv("CP_FLY_ORG", "acme")
    monkeypatch.setenv("CP_FLY_MAX_CONCURRENCY", "7")
    fly = FlyClient.from_settings(load_settings())
    assert fly.http.base_url == "http://127.0.0.1:4280/v1"
    assert fly.org == "acme" and fly.http.max_concurrency == 7
    assert TOKEN not in repr(fly)


def test_from_settings_without_token() -> None:
    with pytest.raises(FlyConfigError, match="CP_FLY_API_TOKEN"):
        FlyClient.from_settings(load_settings())


def test_auth_repr_and_redact() -> None:
    auth = FlyAuth(TOKEN)
    assert TOKEN not in repr(auth) and TOKEN not in str(auth)
    assert auth.redact(f"oops {TOKEN} and FlyV1 {TOKEN}") == "oops ********** and **********"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(auth)


async def test_token_never_in_errors_reprs_or_logs(
    fly: FlyClient, router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    # A hostile server echoing the token back in its error text must not leak it either.
    router.get("/apps/a/machines/m1").mock(return_value=error(500, f"bad token {TOKEN}"))
    router.get("/apps/a/machines/m2").mock(return_value=error(404, f"Authorization: FlyV1 {TOKEN}"))
    router.get("/apps/a/machines/m3").mock(side_effect=httpx.ConnectError(f"failed {TOKEN}"))
    router.get("/apps/a/machines/m4").respond(200, json=machine_json("m4"))
    caplog.set_level(logging.DEBUG)
    seen: list[str] = [repr(fly), str(fly)]
    with structlog.testing.capture_logs() as logs:
        for mid, exc_type in (("m1", FlyServerError), ("m2", FlyNotFound), ("m3", Exception)):
            with pytest.raises(exc_type) as info:
                await fly.get_machine("a", mid)
            seen += [str(info.value), repr(info.value), repr(info.value.args)]
            cause = info.value.__cause__ or info.value.__context__
            seen.append(repr(cause))
        seen.append(repr(await fly.get_machine("a", "m4")))
    seen += [repr(entry) for entry in logs]
    seen.append(caplog.text)
    assert logs, "errors should be logged"
    assert any(entry.get("fly_request_id") for entry in logs)
    for text in seen:
        assert TOKEN not in text
        assert "sekrit" not in text
