"""DEBUG logging of a whole demo run (a fleet of 3, sped up), with the emulator's error paths driven
on purpose (injected 503s and ambiguous answers, a dropped connection, requests without a token or
with a provider key in a field of the wrong type, an endless body, a handler that fails with a key in
its exception), holds none of the demo's secrets (provider keys, channel tokens, the Fly, API and
webhook tokens, the vault key ring), none of the ciphertexts or fingerprints it stored, and no bound
SQL parameters. The run is made under umask 0 with chmod forbidden: every file it leaves is 0600 as
created."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy import text

import workers.demo as demo
from controlplane.db.session import create_engine
from controlplane.fly.emulator import FlyEmulator
from controlplane.fly.emulator.http import Call, Reply
from controlplane.logging import configure_logging
from controlplane.redaction import SECRET_PATTERNS

FLEET = 3
SPEED = 100.0


class _Recorder:
    """Every secret value the demo generates, recorded as it is made."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def wrap(self, make: Callable[..., str]) -> Callable[..., str]:
        def made(*args: Any) -> str:
            value = make(*args)
            self.values.append(value)
            return value

        return made


def _hostile_emulator(recorder: _Recorder) -> type[FlyEmulator]:
    class HostileEmulator(FlyEmulator):
        """The demo's emulator, with its error paths exercised before and while the demo runs."""

        @contextlib.asynccontextmanager
        async def _serve(self, host: str, port: int) -> AsyncIterator[str]:
            key = demo.FAKE_KEYS["openai"]()  # recorded: must never be logged either

            async def boom(call: Call) -> Reply:
                raise RuntimeError(f"handler failed holding {key} and {call.request.path}")

            self.app.router.add("GET", "/v1/boom", "boom", "none", boom)
            async with FlyEmulator.serve(self, host, port) as url:
                auth = {"authorization": f"Bearer {self.options.token}"}
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    assert (await http.get("/v1/boom", headers=auth)).status_code == 500
                    assert (await http.post("/v1/apps", json={"app_name": key})).status_code == 401
                    bad = {"config": {"image": "x", "restart": {"policy": key}}}
                    answer = await http.post("/v1/apps/nope/machines", json=bad, headers=auth)
                    assert answer.status_code in (400, 404)
                    deep = b'{"config":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
                    assert (
                        await http.post("/v1/apps/x/machines", content=deep, headers=auth)
                    ).status_code == 400
                assert await _announce_a_gigabyte(url, self.options.token or "") == 413
                self.inject("get_machine", "503", times=3)
                self.inject("create_machine", "ambiguous_503", times=1)
                self.inject("create_app", "429", times=1)
                self.inject("wait_machine", "drop", times=1)
                self.inject("update_machine", "ambiguous_drop", times=1)
                yield url

        def serve(
            self, host: str = "127.0.0.1", port: int = 0
        ) -> contextlib.AbstractAsyncContextManager[str]:
            return self._serve(host, port)

    return HostileEmulator


async def _announce_a_gigabyte(url: str, token: str) -> int:
    """A request announcing a 1 GiB body and sending none of it: answered without reading it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /v1/apps HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()


def _db_values(url: str) -> tuple[list[str], list[str], list[str]]:
    async def go() -> tuple[list[str], list[str], list[str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                ciphertexts = [v for (v,) in (await conn.execute(text("SELECT value FROM secrets"))).all()]
                prints = [
                    v for (v,) in (await conn.execute(text("SELECT fingerprint FROM provider_keys"))).all()
                ]
                emails = [
                    v for (v,) in (await conn.execute(text("SELECT external_id FROM tenants"))).all() if v
                ]
                return ciphertexts, prints, emails
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_a_demo_run_logged_at_debug_leaks_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = _Recorder()
    for provider, make in list(demo.FAKE_KEYS.items()):
        monkeypatch.setitem(demo.FAKE_KEYS, provider, recorder.wrap(make))
    monkeypatch.setattr(demo, "fake_telegram_token", recorder.wrap(demo.fake_telegram_token))
    monkeypatch.setattr(demo, "fake_discord_token", recorder.wrap(demo.fake_discord_token))
    # the Fly, API and webhook tokens (only the demo's own calls: the Stripe fake's ids are not secrets)
    proxy = SimpleNamespace(
        token_hex=recorder.wrap(secrets.token_hex), choice=secrets.choice, randbelow=secrets.randbelow
    )
    monkeypatch.setattr(demo, "secrets", proxy)
    monkeypatch.setattr(demo, "FlyEmulator", _hostile_emulator(recorder))
    monkeypatch.setattr(demo, "GRACE_SECONDS", 1.0)  # the scenario's real-time waits, shortened
    monkeypatch.setattr(demo, "RETENTION_SECONDS", 1.0)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("chmod after creation")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    logs, screen = io.StringIO(), io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=logs)
    umask = os.umask(0)
    try:
        code = asyncio.run(demo.run_demo(Console(file=screen, width=200), speed=SPEED, fleet_size=FLEET))
    finally:
        os.umask(umask)
        configure_logging(level="INFO", fmt="json")
    assert code == 0, screen.getvalue()[-3000:]
    assert f"demo complete: {FLEET + 1} agents running" in screen.getvalue()

    # every file the run left behind was created private
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in tmp_path.iterdir() if p.is_file()}
    assert {".env", "controlplane.db", "fly-emulator.json"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes

    env = (tmp_path / ".env").read_text()
    (ring,) = re.findall(r"^CP_VAULT_KEYS=(\S+)$", env, re.M)
    key_material = ring.split(":", 1)[1]
    ciphertexts, fingerprints, emails = _db_values(f"sqlite+aiosqlite:///{tmp_path / 'controlplane.db'}")
    assert len(ciphertexts) >= FLEET * 2 and fingerprints
    secrets_made = [v for v in recorder.values if len(v) >= 16]
    assert len(secrets_made) >= FLEET * 3

    out = logs.getvalue()
    lines = out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(lines) > 200 and sum(r["level"] == "debug" for r in records) > 50  # DEBUG, the whole run
    loggers = {r.get("logger", "") for r in records}
    assert "fly_emulator.unexpected_error" in out and "controlplane.fly.emulator.app" in loggers
    forbidden = {
        "the vault key ring": [ring, key_material, base64.b64decode(key_material).hex()],
        "a generated secret": secrets_made,
        "a ciphertext": ciphertexts + [c.rsplit(":", 1)[1][:24] for c in ciphertexts],
        "a fingerprint (a bound parameter)": fingerprints,
    }
    for what, values in forbidden.items():
        leaked = [v[:6] + "…" for v in values if v and v in out]
        assert leaked == [], f"{what} in the DEBUG log: {leaked}"
    assert [p.pattern for p in SECRET_PATTERNS if p.search(out)] == []
    # tenants' emails (bound parameters of the tenant writes) only as the external id in the path of
    # the demo's own dashboard API requests (httpx's request lines)
    for record in records:
        if record.get("logger") != "httpx" or not record["event"].startswith("HTTP Request:"):
            assert not any(e in json.dumps(record) for e in emails), record
    # no bound parameters: aiosqlite's statement records never pass, SQLAlchemy shows none
    assert not any(name.startswith("aiosqlite") for name in loggers)
    assert "[generated in" not in out and "[cached since" not in out
    # the screen shows no secret either
    assert [v[:6] for v in secrets_made + ciphertexts if v in screen.getvalue()] == []
