"""Wait for a machine state up to the caller's own deadline (reference §7).

Fly's ``GET .../wait`` blocks at most 60 s and answers 408 on timeout; this loops it until the
deadline, pins the version, follows a *replaced* or *migrated* version (re-GET to learn the new
``instance_id``), treats 404 as ``destroyed`` when that is a target, and tolerates a brief 404 right
after create (read-after-write lag, :data:`NOT_FOUND_GRACE`).

It never spins to the deadline on a dead end: ``failed``/``launch_failed`` raise
:class:`FlyMachineFailed` and ``destroyed`` raises :class:`FlyMachineDestroyed` at once, unless they
are (or, for ``launch_failed``, lead to) one of the wanted states.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from controlplane.fly.errors import (
    FlyBadRequest,
    FlyMachineDestroyed,
    FlyMachineFailed,
    FlyNotFound,
    FlyPrecondition,
    FlyTimeout,
    FlyWaitTimeout,
)
from controlplane.fly.models import FAILED_STATES, SUPERSEDED_STATES, TRANSIENT_STATES, WaitResult, WaitState

if TYPE_CHECKING:
    from controlplane.fly.client import FlyClient

log = structlog.get_logger(__name__)

_CURRENTLY = re.compile(r"currently (\w+)", re.I)
#: Right after a create, a 404 may only be lag: keep trying this long before believing it.
NOT_FOUND_GRACE = 5.0


def _current_state(message: str) -> str | None:
    match = _CURRENTLY.search(message)
    return match.group(1).lower() if match else None


def _reached(state: str | None, targets: Sequence[str]) -> bool:
    if state is None:
        return False
    if state in targets:
        return True
    return "settled" in targets and state not in TRANSIENT_STATES and state not in SUPERSEDED_STATES


def _dead_end(machine_id: str, state: str | None, targets: Sequence[str], **kw: object) -> None:
    """Raise at once when ``state`` cannot lead to any of ``targets`` by itself."""
    if state in FAILED_STATES and state not in targets:
        if state == "launch_failed" and "destroyed" in targets:
            return  # a failed launch ends in destroyed
        raise FlyMachineFailed(
            f"machine {machine_id} is {state} while waiting for {','.join(targets)}",
            last_state=state,
            **kw,
        )
    if state == "destroyed" and "destroyed" not in targets:
        raise FlyMachineDestroyed(
            f"machine {machine_id} was destroyed while waiting for {','.join(targets)}",
            last_state=state,
            **kw,
        )


async def wait_for(
    client: FlyClient,
    app: str,
    machine_id: str,
    states: WaitState | Sequence[WaitState],
    *,
    timeout: float,
    version: str | None = None,
    not_found_grace: float = NOT_FOUND_GRACE,
) -> WaitResult:
    """Return once the machine is in one of ``states``; raise :class:`FlyWaitTimeout` at the
    deadline (``timeout`` seconds from now). ``result.version`` is the version that got there.

    Pass ``version`` (the ``instance_id`` from your create/update answer). Without one, the current
    version is read first with a GET (unless only ``destroyed`` is wanted)."""
    targets: list[str] = [states] if isinstance(states, str) else list(states)
    if not targets:
        raise ValueError("wait_for needs at least one state")
    clock = client.clock
    started = clock.monotonic()
    deadline = started + timeout
    backoff = 0.5
    last_state: str | None = None

    async def follow_replaced() -> WaitResult | None:
        nonlocal version, last_state
        try:
            machine = await client.get_machine(app, machine_id)
        except FlyNotFound:
            if "destroyed" in targets:
                return WaitResult(ok=True, state="destroyed", version=version)
            raise
        log.info(
            "fly.wait_follow_version",
            app=app,
            machine_id=machine_id,
            old_version=version,
            new_version=machine.current_version,
        )
        unchanged = machine.current_version == version
        version = machine.current_version
        last_state = machine.state
        if _reached(machine.state, targets):
            return WaitResult(ok=True, state=machine.state, version=version)
        _dead_end(machine_id, machine.state, targets)
        if unchanged:  # inconsistent answers (eventual consistency): do not spin
            await pause()
        return None

    async def pause() -> None:
        nonlocal backoff
        await clock.sleep(min(backoff, max(0.0, deadline - clock.monotonic())))
        backoff = min(backoff * 2, 2.0)

    if version is None and set(targets) - {"destroyed"}:
        # Always pin the version (reference §7; wait state=stopped without one is refused): read it.
        try:
            machine = await client.get_machine(app, machine_id)
        except FlyNotFound:
            machine = None  # lag right after create, or gone: the loop below decides
        if machine is not None:
            version = machine.current_version
            last_state = machine.state
            if _reached(machine.state, targets):
                return WaitResult(ok=True, state=machine.state, version=version)
            _dead_end(machine_id, machine.state, targets)

    while True:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise FlyWaitTimeout(
                f"machine {machine_id} did not reach {','.join(targets)} within {timeout:g}s"
                + (f" (last seen {last_state})" if last_state else ""),
                last_state=last_state,
                method="GET",
                path=f"/apps/{app}/machines/{machine_id}/wait",
            )
        per_call = max(1, min(60, int(remaining)))  # never overshoot the deadline by much
        try:
            result = await client.wait_machine(app, machine_id, targets, version=version, timeout=per_call)  # type: ignore[arg-type]
        except FlyNotFound:
            if "destroyed" in targets:
                return WaitResult(ok=True, state="destroyed", version=version)
            if clock.monotonic() - started < not_found_grace:
                await pause()
                continue
            raise
        except FlyTimeout as exc:  # 408: not there yet
            last_state = _current_state(exc.message) or last_state
            if last_state in SUPERSEDED_STATES:
                got = await follow_replaced()
                if got is not None:
                    return got
                continue
            _dead_end(machine_id, last_state, targets, status_code=exc.status_code, request_id=exc.request_id)
            await pause()
            continue
        except (FlyBadRequest, FlyPrecondition) as exc:
            text = exc.message.lower()
            if "replaced" not in text and "migrated" not in text:
                raise
            got = await follow_replaced()
            if got is not None:
                return got
            continue
        if result.state in SUPERSEDED_STATES:
            got = await follow_replaced()
            if got is not None:
                return got
            continue
        if result.version is None:
            result.version = version
        return result


__all__ = ["NOT_FOUND_GRACE", "wait_for"]
