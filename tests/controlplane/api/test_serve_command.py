"""``controlplane serve``: refuses to start without service tokens or the vault key ring (exit 2,
naming the variable); otherwise serves the API with uvicorn on loopback, JSON access logs on
stderr; on a migrated SQLite and PostgreSQL database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.api import SERVICE_TOKEN
from tests.support.db import TEST_VAULT_KEYS

REPO = Path(__file__).resolve().parents[3]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
    env.update(values)
    env["PYTHONPATH"] = str(REPO)
    return env


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_refuses_to_start_without_tokens_or_vault_keys(tmp_path: Path) -> None:
    no_tokens = _cli("serve", env=_env(CP_VAULT_KEYS=TEST_VAULT_KEYS), cwd=tmp_path)
    assert no_tokens.returncode == 2 and "CP_API_TOKENS" in no_tokens.stderr
    assert "Traceback" not in no_tokens.stderr
    no_vault = _cli("serve", env=_env(CP_API_TOKENS=SERVICE_TOKEN), cwd=tmp_path)
    assert no_vault.returncode == 2 and "CP_VAULT_KEYS" in no_vault.stderr
    bad_port = _cli("serve", "--port", "70000", env=_env(), cwd=tmp_path)
    assert bad_port.returncode == 2 and "--port" in bad_port.stderr


def test_serve_runs_the_api_on_loopback(fresh_database_url: str, tmp_path: Path) -> None:
    env = _env(
        CP_DATABASE_URL=fresh_database_url,
        CP_API_TOKENS=SERVICE_TOKEN,
        CP_VAULT_KEYS=TEST_VAULT_KEYS,
        CP_LOG_FORMAT="json",
    )
    assert _cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # wait until it listens (bounded), not a timing assertion
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the API did not come up")
        assert httpx.get(f"{base}/v1/tenants/nobody/status").status_code == 401
        r = httpx.get(
            f"{base}/v1/tenants/nobody/status", headers={"authorization": f"Bearer {SERVICE_TOKEN}"}
        )
        assert r.status_code == 404 and r.json()["error"]["field"] == "external_id"
        assert httpx.get(f"{base}/openapi.json").json()["openapi"].startswith("3.1")
    finally:
        server.send_signal(signal.SIGINT)
        _out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err[-2000:]
    access = [
        json.loads(line) for line in err.splitlines() if line.startswith("{") and '"http.request"' in line
    ]
    assert {(a["route"], a["status"]) for a in access} >= {
        ("/readyz", 200),
        ("/v1/tenants/{external_id}/status", 401),
        ("/v1/tenants/{external_id}/status", 404),
    }
    assert "nobody" not in json.dumps(access) and SERVICE_TOKEN not in err
