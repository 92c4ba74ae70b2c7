"""OpenClaw gateway probes (/healthz, /startupz, /readyz) served "through Fly's proxy" per app.

Routing: ``Host: <app>.fly.dev`` or path ``/gateway/<app>/<probe>``; header ``fly-force-instance-id``
picks a machine. Answers follow the machine's state:

* started and booted (``gateway_boot`` elapsed): 200 ``{"ok":true,"status":"live"}`` /
  ``{"ok":true,"status":"started"}`` / ``{"ready":true}``; readyz answers 503 ``{"ready":false}`` while a
  configured channel fails its checks (``FlyEmulator.fail_channel``) or the test marked the gateway not
  ready (``set_gateway_health``);
* started but still booting: healthz 200, startupz 503 ``starting``, readyz 503;
* starting / replacing / restarting: 503 ``{"ok":false,"status":"starting"}`` (readyz ``{"ready":false}``);
* anything else (stopped, suspended, created, failed, destroyed, no machine) or a crash-looping gateway:
  502 plain text from the "proxy" — our stand-in for a refused connection. A stopped/suspended machine
  whose services have ``autostart`` is started by the proxy first, as Fly does (``proxy_autostart``).

Details only for ``Authorization: Bearer <OPENCLAW_GATEWAY_TOKEN>`` as visible to the machine's
secrets version, with the key sets CAPTURED from the real 2026.9.6 gateway (remote callers; see
``tests/support/openclaw_captures/remote_probes.json``): healthz never adds any; startupz adds
``version`` and ``uptimeMs`` (``pendingReason`` while starting); readyz adds ``failing`` (the failing
channel ids, e.g. ``["telegram"]``), ``uptimeMs`` and ``eventLoop``. The event-loop figures are emulated.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from controlplane.fly.emulator import machines as machine_ops
from controlplane.fly.emulator.agent import AgentView
from controlplane.fly.emulator.apps import gateway_token_mac
from controlplane.fly.emulator.config import image_ref, services_autostart
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.http import Reply, Request
from controlplane.fly.emulator.state import MachineRecord
from controlplane.fly.emulator.timeline import settle

PROBES = {
    "/healthz": "healthz",
    "/health": "healthz",
    "/startupz": "startupz",
    "/startup": "startupz",
    "/readyz": "readyz",
    "/ready": "readyz",
}
_GATEWAY_PATH = re.compile(r"^/gateway/(?P<app>[a-z0-9-]+)(?P<rest>/.*)?$")
BOOTING_STATES = frozenset({"starting", "replacing", "restarting"})


def probe_target(request: Request) -> tuple[str, str] | None:
    """(app, path) when the request is for a gateway rather than the Machines API."""
    host = request.headers.get("host", "").split(":")[0].lower()
    if host.endswith(".fly.dev"):
        return host[: -len(".fly.dev")], request.path
    found = _GATEWAY_PATH.match(request.path)
    if found:
        return found.group("app"), found.group("rest") or "/"
    return None


def _proxy_error(message: str) -> Reply:
    return Reply(502, text=f"fly-proxy: {message}\n", headers={"via": "1.1 fly.io"})


def _pick(world: World, app: str, request: Request) -> MachineRecord | None:
    candidates = [m for m in world.state.machines_of(app) if not m.gone]
    for machine in candidates:
        settle(world, machine)
    forced = request.headers.get("fly-force-instance-id")
    if forced:
        return next((m for m in candidates if m.id == forced), None)
    ordered = sorted(candidates, key=lambda m: m.created_mono)
    for wanted in (("started",), tuple(BOOTING_STATES), ("stopped", "suspended")):
        for machine in ordered:
            if machine.state in wanted and not machine.cordoned:
                return machine
    return ordered[0] if ordered else None


def _authorized(world: World, machine: MachineRecord, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    app = world.state.apps.get(machine.app)
    if app is None:
        return False
    expected = gateway_token_mac(world, app, machine.secrets_version)
    return expected is not None and hmac.compare_digest(expected, world.state.secret_mac(token.strip()))


def handle_probe(world: World, app_name: str, path: str, request: Request) -> Reply:
    probe = PROBES.get(path.rstrip("/") or "/")
    if world.state.apps.get(app_name) is None:
        return Reply(404, text=f"fly-proxy: app {app_name} not found\n")
    machine = _pick(world, app_name, request)
    if machine is None:
        return _proxy_error(f"no machines in app {app_name}")
    if (
        machine.state in ("stopped", "suspended")
        and world.options.proxy_autostart
        and services_autostart(machine.config)
        and machine.lease is None
    ):
        machine_ops.start_machine(world, app_name, machine.id, nonce=None, source="proxy")
        settle(world, machine)
    if probe is None:
        return Reply(404, body={"error": "not found"})
    state = machine.state
    if state in BOOTING_STATES:
        return _booting(probe)
    if state != "started" or machine.health.crash_looping:
        reason = "connection refused" if state == "started" else f"machine {machine.id} is {state}"
        return _proxy_error(f"could not reach the app in {app_name}: {reason}")
    now = world.now()
    started = machine.started_mono if machine.started_mono is not None else now
    booted = now >= started + world.profile.gateway_boot
    details = _authorized(world, machine, request)
    uptime_ms = int(max(0.0, now - started) * 1000)
    extra: dict[str, Any] = {}
    if details:
        extra = {"version": image_ref(str(machine.config.get("image", "")))["tag"], "uptimeMs": uptime_ms}
    if probe == "healthz":
        return Reply(200, {"ok": True, "status": "live"})
    if probe == "startupz":
        if not booted:
            return Reply(
                503,
                {
                    "ok": False,
                    "status": "starting",
                    **({**extra, "pendingReason": "gateway starting"} if details else {}),
                },
            )
        return Reply(200, {"ok": True, "status": "started", **extra})
    view = AgentView.of(world, machine)
    agent_ready, failing = view.readiness()
    ready = booted and agent_ready
    body: dict[str, Any] = {"ready": ready}
    if details:
        body.update(
            {
                "failing": [] if ready else (failing if booted else ["startup"]),
                "uptimeMs": uptime_ms,
                "eventLoop": view.event_loop(),
            }
        )
    return Reply(200 if ready else 503, body)


def _booting(probe: str) -> Reply:
    if probe == "readyz":
        return Reply(503, {"ready": False})
    return Reply(503, {"ok": False, "status": "starting"})
