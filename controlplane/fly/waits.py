"""Wait for a machine state up to the caller's own deadline (fly-machines.md, "Wait semantics").

Fly's ``GET .../wait`` blocks at most 60 s and answers 408 on timeout; :func:`wait_for` loops it until
the deadline, pins the version, follows a *replaced* or *migrated* version (re-GET to learn the new
``instance_id``), treats 404 as ``destroyed`` when that is a target, and tolerates a brief 404 right
after create (read-after-write lag, :data:`NOT_FOUND_GRACE`). Between long polls that end without the
state it pauses (:data:`POLL_BACKOFF`, on :func:`controlplane.retry.retry_call`).

It never spins to the deadline on a dead end: ``failed``/``launch_failed`` raise
:class:`FlyMachineFailed` and ``destroyed`` raises :class:`FlyMachineDestroyed` at once, unless they
are (or, for ``launch_failed``, lead to) one of the wanted states.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

import structlog

from controlplane.fly.client import MAX_WAIT_SECONDS, FlyClient
from controlplane.fly.errors import (
    FlyBadRequest,
    FlyErrorContext,
    FlyMachineDestroyed,
    FlyMachineFailed,
    FlyNotFound,
    FlyPrecondition,
    FlyTimeout,
    FlyWaitTimeout,
)
from controlplane.fly.models import (
    FAILED_STATES,
    SUPERSEDED_STATES,
    TRANSIENT_STATES,
    Machine,
    WaitResult,
    WaitState,
)
from controlplane.retry import Backoff, TryAgain, retry_call

log = structlog.get_logger(__name__)

_CURRENTLY = re.compile(r"currently (\w+)", re.I)
#: Right after a create, a 404 may only be lag: keep trying this long before believing it.
NOT_FOUND_GRACE = 5.0
#: Pause between long polls that ended without the state (flyctl: 500 ms growing to 2 s).
POLL_BACKOFF = Backoff(initial=0.5, cap=2.0)


def _current_state(message: str) -> str | None:
    match = _CURRENTLY.search(message)
    return match.group(1).lower() if match else None


def _reached(state: str | None, targets: Sequence[str]) -> bool:
    if state is None:
        return False
    if state in targets:
        return True
    return "settled" in targets and state not in TRANSIENT_STATES and state not in SUPERSEDED_STATES


def _dead_end(
    machine_id: str, state: str | None, targets: Sequence[str], **context: Unpack[FlyErrorContext]
) -> None:
    """Raise at once when ``state`` cannot lead to any of ``targets`` by itself."""
    if state in FAILED_STATES and state not in targets:
        if state == "launch_failed" and "destroyed" in targets:
            return  # a failed launch ends in destroyed
        raise FlyMachineFailed(
            f"machine {machine_id} is {state} while waiting for {','.join(targets)}",
            last_state=state,
            **context,
        )
    if state == "destroyed" and "destroyed" not in targets:
        raise FlyMachineDestroyed(
            f"machine {machine_id} was destroyed while waiting for {','.join(targets)}",
            last_state=state,
            **context,
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
    wait = _Wait(client, app, machine_id, targets, timeout=timeout, version=version, grace=not_found_grace)
    if version is None and set(targets) - {"destroyed"}:
        # Always pin the version (a wait for stopped without one is refused): read it.
        try:
            machine = await client.get_machine(app, machine_id)
        except FlyNotFound:
            machine = None  # lag right after create, or gone: the polls decide
        if machine is not None and (reached := wait.seen(machine)) is not None:
            return reached
    return await retry_call(
        wait.poll, clock=client.clock, backoff=POLL_BACKOFF, deadline=wait.deadline, rng=client.rng
    )


@dataclass
class _Wait:
    """One :func:`wait_for`: the deadline, the version followed and the state last seen."""

    client: FlyClient
    app: str
    machine_id: str
    targets: list[str]
    timeout: float
    version: str | None
    grace: float
    last_state: str | None = None

    def __post_init__(self) -> None:
        self.started = self.client.clock.monotonic()
        self.deadline = self.started + self.timeout
        self.log = log.bind(app=self.app, machine_id=self.machine_id)

    def destroyed(self) -> WaitResult:
        return WaitResult(ok=True, state="destroyed", version=self.version)

    def not_yet(self) -> TryAgain:
        """Pause, then poll again; at the deadline this timeout is what the caller gets."""
        return TryAgain(
            FlyWaitTimeout(
                f"machine {self.machine_id} did not reach {','.join(self.targets)} within {self.timeout:g}s"
                + (f" (last seen {self.last_state})" if self.last_state else ""),
                last_state=self.last_state,
                method="GET",
                path=f"/apps/{self.app}/machines/{self.machine_id}/wait",
            )
        )

    def seen(self, machine: Machine) -> WaitResult | None:
        """Take in a freshly read machine: the result if it is there, an error if it never will be."""
        self.version = machine.current_version
        self.last_state = machine.state
        if _reached(machine.state, self.targets):
            return WaitResult(ok=True, state=machine.state, version=self.version)
        _dead_end(self.machine_id, machine.state, self.targets)
        return None

    async def poll(self) -> WaitResult:
        """Long polls until the machine is there; raises :meth:`not_yet` when it is time to pause."""
        clock = self.client.clock
        while True:
            remaining = self.deadline - clock.monotonic()
            if remaining <= 0:
                raise self.not_yet()
            per_call = max(1, min(MAX_WAIT_SECONDS, int(remaining)))  # never overshoot by much
            try:
                result = await self.client.wait_machine(
                    self.app,
                    self.machine_id,
                    self.targets,  # type: ignore[arg-type]
                    version=self.version,
                    timeout=per_call,
                )
            except FlyNotFound:
                if "destroyed" in self.targets:
                    return self.destroyed()
                if clock.monotonic() - self.started < self.grace:
                    raise self.not_yet() from None
                raise
            except FlyTimeout as exc:  # 408: not there yet
                self.last_state = _current_state(exc.message) or self.last_state
                if self.last_state not in SUPERSEDED_STATES:
                    _dead_end(
                        self.machine_id,
                        self.last_state,
                        self.targets,
                        status_code=exc.status_code,
                        request_id=exc.request_id,
                    )
                    raise self.not_yet() from None
            except (FlyBadRequest, FlyPrecondition) as exc:
                text = exc.message.lower()
                if "replaced" not in text and "migrated" not in text:
                    raise
            else:
                if result.state not in SUPERSEDED_STATES:
                    if result.version is None:
                        result.version = self.version
                    return result
            # We waited on a version that was replaced or migrated: follow the new one.
            followed = await self.follow_new_version()
            if followed is not None:
                return followed

    async def follow_new_version(self) -> WaitResult | None:
        try:
            machine = await self.client.get_machine(self.app, self.machine_id)
        except FlyNotFound:
            if "destroyed" in self.targets:
                return self.destroyed()
            raise
        self.log.info(
            "fly.wait_follow_version", old_version=self.version, new_version=machine.current_version
        )
        unchanged = machine.current_version == self.version
        reached = self.seen(machine)
        if reached is None and unchanged:  # inconsistent answers (eventual consistency): do not spin
            raise self.not_yet()
        return reached


__all__ = ["NOT_FOUND_GRACE", "wait_for"]
