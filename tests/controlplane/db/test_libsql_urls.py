"""libSQL URLs: the three forms (local file, remote Turso, embedded replica) are accepted and mapped to
the driver's arguments; malformed ones are refused naming the part; the auth token is a secret that
never shows in a normalised-for-display URL, the engine's URL, settings or errors, and travels only
in the Authorization header of the remote protocol."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from controlplane.db.libsql_dialect import SQLiteDialect_libsql_async
from controlplane.db.session import Database, create_engine
from controlplane.db.urls import normalise_database_url, redact_database_url, split_auth_token
from controlplane.settings import load_settings

TOKEN = "eyJhbGciOiJFZERTQSJ9.tursotokenpayload0000.signature0000"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("libsql:///cp.db", "sqlite+libsql_async:///cp.db"),
        ("libsql:////var/lib/cp/cp.db", "sqlite+libsql_async:////var/lib/cp/cp.db"),
        (
            f"libsql://cp-acme.turso.io?authToken={TOKEN}",
            f"sqlite+libsql_async://cp-acme.turso.io?authToken={TOKEN}",
        ),
        ("libsql://127.0.0.1:8080?tls=0", "sqlite+libsql_async://127.0.0.1:8080?tls=0"),
        (
            "libsql:////data/replica.db?syncUrl=libsql://cp-acme.turso.io&syncInterval=30",
            "sqlite+libsql_async:////data/replica.db?syncInterval=30&syncUrl=libsql%3A%2F%2Fcp-acme.turso.io",
        ),
    ],
)
def test_libsql_urls_get_the_libsql_driver(raw: str, normalised: str) -> None:
    assert normalise_database_url(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("libsql://cp.turso.io/some/path", "no path"),
        ("libsql://cp.turso.io?token=x", "unknown libSQL URL option(s) token"),
        ("libsql://user:pw@cp.turso.io", "?authToken="),
        ("libsql://cp.turso.io?syncUrl=libsql://other.turso.io", "syncUrl needs a local file"),
        ("libsql:///r.db?syncUrl=ftp://x", "syncUrl must be"),
        ("libsql:///r.db?syncUrl=libsql://x.turso.io&syncInterval=soon", "syncInterval"),
        ("libsql:///r.db?syncInterval=5", "syncInterval"),
        ("libsql://cp.turso.io?tls=maybe", "tls must be 0 or 1"),
        ("libsql://", "needs a file"),
    ],
)
def test_malformed_libsql_urls_are_refused_naming_the_part(raw: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        normalise_database_url(raw)
    assert reason in str(info.value)
    assert "pw" not in str(info.value).replace("pw@", "")


def test_the_token_is_masked_for_display_and_in_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    url = normalise_database_url(f"libsql://cp-acme.turso.io?authToken={TOKEN}")
    assert TOKEN not in redact_database_url(url)
    assert "authToken=***" in redact_database_url(url)
    monkeypatch.setenv("CP_DATABASE_URL", f"libsql://cp-acme.turso.io?authToken={TOKEN}")
    settings = load_settings()
    assert TOKEN not in repr(settings)
    assert TOKEN not in json.dumps(settings.public_view())


def test_the_engine_url_never_holds_the_token() -> None:
    engine = create_engine(f"libsql://cp-acme.turso.io?authToken={TOKEN}")
    try:
        assert TOKEN not in str(engine.url) + repr(engine.url) + repr(engine)
        assert split_auth_token(str(engine.url)) == (str(engine.url), None)
    finally:
        engine.sync_engine.dispose()


@pytest.mark.parametrize(
    ("url", "database", "options"),
    [
        ("sqlite+libsql_async:////srv/cp.db", "/srv/cp.db", {}),
        ("sqlite+libsql_async://cp-acme.turso.io", "libsql://cp-acme.turso.io", {}),
        ("sqlite+libsql_async://127.0.0.1:8080?tls=0", "http://127.0.0.1:8080", {}),
        (
            "sqlite+libsql_async:////srv/r.db?syncUrl=libsql://cp-acme.turso.io&syncInterval=15",
            "/srv/r.db",
            {"sync_url": "libsql://cp-acme.turso.io", "sync_interval": 15.0},
        ),
    ],
)
def test_urls_become_the_sdk_connect_arguments(url: str, database: str, options: dict[str, object]) -> None:
    args, kwargs = SQLiteDialect_libsql_async().create_connect_args(make_url(url))
    assert list(args) == [database]
    assert kwargs == options


STUB_SERVER = """
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with open(sys.argv[1], "a") as out:
            out.write(json.dumps({"path": self.path, "auth": self.headers.get("authorization"),
                                  "body": body.decode()}) + "\\n")
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


async def test_the_remote_protocol_sends_the_token_as_a_bearer_header_only(tmp_path: Path) -> None:
    # The server runs in another process: the SDK keeps the GIL while it waits for an answer, so a
    # server in this process could never reply.
    log = tmp_path / "requests.jsonl"
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STUB_SERVER, str(log), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(await server.stdout.readline())
        db = Database.from_url(f"libsql://127.0.0.1:{port}?tls=0&authToken={TOKEN}")
        try:
            with pytest.raises(OperationalError) as info:
                async with db.read() as session:
                    await session.execute(text("SELECT 1"))
        finally:
            await db.dispose()
    finally:
        server.terminate()
        await server.wait()
    message = str(info.value)
    assert TOKEN not in message and "\n" in message  # SQLAlchemy's statement line follows
    assert "404" in message  # the server's answer is named
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert requests, "the SDK never reached the server"
    for request in requests:
        assert request["path"] == "/v3/pipeline"  # Hrana 3 over HTTP
        assert request["auth"] == f"Bearer {TOKEN}"
        assert TOKEN not in request["body"]
