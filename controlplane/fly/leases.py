"""Machine lease as an async context manager (reference §8).

    async with fly.lease(app, machine_id) as lease:
        machine = await fly.get_machine(app, machine_id)
        await fly.update_machine(app, machine_id, request, nonce=lease.nonce)

flyctl's pattern: a short TTL (13 s) refreshed in the background every ``(ttl - 1) / 3`` s, and the
lease is ALWAYS released on exit — normal exit, exception or cancellation. The release runs in its own
shielded task, so even a second cancellation cannot stop it from being sent; if it still fails, the
short TTL makes the lease expire on its own within seconds.

An acquire whose answer is lost (408/5xx/dropped connection) may have taken the lease with a nonce
we never saw. We never act as if we held it: each attempt carries a unique marker in the lease
``description``; after an ambiguous answer we read the lease back (``GET .../lease``) and adopt it
only if it carries OUR marker (then we know its nonce); no lease → the acquire did not happen, try
again; someone else's lease → treated as held. If even the read fails, the error is raised and the
unseen lease (if any) simply expires after its short TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING

import structlog

from controlplane.fly.errors import FlyError, FlyLeaseHeld, FlyNotFound
from controlplane.fly.models import Lease

if TYPE_CHECKING:
    from controlplane.fly.client import FlyClient

log = structlog.get_logger(__name__)

#: Acquires answered ambiguously (and found not to have happened) that are tried again.
AMBIGUOUS_ACQUIRE_RETRIES = 3
#: How long the release call may take before we give up (the lease then simply expires).
RELEASE_TIMEOUT = 10.0
#: Keeps release tasks referenced until they finish (asyncio only holds weak references).
_background: set[asyncio.Task[None]] = set()


class LeaseLost(FlyLeaseHeld):
    """Our lease could not be refreshed (expired, or taken over). Mutations will get 409."""


class MachineLease:
    """Holds a machine lease for the duration of an ``async with`` block."""

    def __init__(
        self,
        client: FlyClient,
        app: str,
        machine_id: str,
        *,
        ttl: int = 13,
        description: str | None = None,
        acquire_timeout: float = 0.0,
        refresh_interval: float | None = None,
    ) -> None:
        if ttl < 2:
            raise ValueError("lease ttl must be at least 2 seconds")
        self.client = client
        self.app = app
        self.machine_id = machine_id
        self.ttl = ttl
        self.description = description
        self.acquire_timeout = acquire_timeout
        self.refresh_interval = refresh_interval or max(0.5, (ttl - 1) / 3)
        self.lease: Lease | None = None
        self.lost: FlyError | None = None
        self.refreshes = 0
        self.released = False
        self._refresher: asyncio.Task[None] | None = None

    @property
    def nonce(self) -> str:
        """The nonce to pass as ``nonce=`` on every mutating call."""
        if self.lease is None:
            raise RuntimeError("the lease is not held")
        return self.lease.nonce

    @property
    def version(self) -> str | None:
        """Machine version when the lease was taken; re-GET if it differs from your cache."""
        return self.lease.version if self.lease else None

    def check(self) -> None:
        """Raise :class:`LeaseLost` if background refresh found the lease gone."""
        if self.lost is not None:
            raise LeaseLost(
                f"lease on machine {self.machine_id} was lost: {self.lost.message}",
                status_code=self.lost.status_code,
                request_id=self.lost.request_id,
            )

    def __repr__(self) -> str:
        return (
            f"MachineLease(app={self.app!r}, machine_id={self.machine_id!r}, ttl={self.ttl}, "
            f"held={self.lease is not None and not self.released})"
        )

    async def __aenter__(self) -> MachineLease:
        clock = self.client.clock
        deadline = clock.monotonic() + self.acquire_timeout
        delay = 0.5
        ambiguous_left = AMBIGUOUS_ACQUIRE_RETRIES
        while True:
            marker = secrets.token_hex(6)
            description = f"{self.description} [{marker}]" if self.description else f"[{marker}]"
            try:
                self.lease = await self.client.acquire_lease(
                    self.app, self.machine_id, ttl=self.ttl, description=description
                )
                break
            except FlyLeaseHeld:
                if clock.monotonic() + delay > deadline:
                    raise
                await clock.sleep(delay)
                delay = min(delay * 2, 4.0)
            except FlyError as exc:
                if not exc.ambiguous:
                    raise
                log.warning(
                    "fly.lease_acquire_ambiguous",
                    app=self.app,
                    machine_id=self.machine_id,
                    **exc.log_fields(),
                )
                found = await self.client.get_lease(self.app, self.machine_id)  # a failure raises
                if found is not None and found.description and marker in found.description:
                    log.info("fly.lease_adopted", app=self.app, machine_id=self.machine_id)
                    self.lease = found  # ours: its nonce is now known
                    break
                if found is not None:
                    # Someone else's lease: the same as a 409.
                    if clock.monotonic() + delay > deadline:
                        raise FlyLeaseHeld(
                            f"machine {self.machine_id} lease currently held by {found.owner or 'another holder'}",
                            status_code=409,
                        ) from None
                    await clock.sleep(delay)
                    delay = min(delay * 2, 4.0)
                    continue
                ambiguous_left -= 1  # no lease: the acquire did not happen (or already expired)
                if ambiguous_left < 0:
                    raise
        self._refresher = asyncio.create_task(self._refresh_loop(), name=f"lease-refresh-{self.machine_id}")
        return self

    async def _refresh_loop(self) -> None:
        clock = self.client.clock
        while True:
            await clock.sleep(self.refresh_interval)
            try:
                lease = await self.client.refresh_lease(self.app, self.machine_id, self.nonce, ttl=self.ttl)
            except (FlyNotFound, FlyLeaseHeld) as exc:
                self.lost = exc
                log.warning("fly.lease_lost", app=self.app, machine_id=self.machine_id, **exc.log_fields())
                return
            except FlyError as exc:  # transient: try again next interval, TTL still covers us
                log.warning(
                    "fly.lease_refresh_failed", app=self.app, machine_id=self.machine_id, **exc.log_fields()
                )
                continue
            except Exception as exc:
                self.lost = FlyLeaseHeld(f"lease refresh failed unexpectedly ({type(exc).__name__})")
                log.error(
                    "fly.lease_refresh_crashed",
                    app=self.app,
                    machine_id=self.machine_id,
                    error_type=type(exc).__name__,
                )
                return
            if lease.nonce and lease.nonce != self.nonce:
                self.lost = FlyLeaseHeld("lease refresh returned a different nonce")
                log.warning("fly.lease_nonce_changed", app=self.app, machine_id=self.machine_id)
                return
            self.refreshes += 1

    async def __aexit__(self, *exc_info: object) -> None:
        refresher, self._refresher = self._refresher, None
        try:
            if refresher is not None:
                refresher.cancel()
                # asyncio.wait never raises the refresher's CancelledError, only our own.
                await asyncio.wait({refresher})
        finally:
            await self._release_shielded()

    async def _release_shielded(self) -> None:
        if self.lease is None or self.released:
            return
        task = asyncio.ensure_future(self._release())
        _background.add(task)
        task.add_done_callback(_background.discard)
        # If we are cancelled (again) while waiting, the release task carries on regardless.
        await asyncio.shield(task)

    async def _release(self) -> None:
        try:
            await asyncio.wait_for(
                self.client.release_lease(self.app, self.machine_id, self.nonce),
                timeout=RELEASE_TIMEOUT,
            )
        except FlyError as exc:
            log.warning(
                "fly.lease_release_failed", app=self.app, machine_id=self.machine_id, **exc.log_fields()
            )
        except TimeoutError:
            log.warning("fly.lease_release_timeout", app=self.app, machine_id=self.machine_id)
        finally:
            self.released = True


async def clear_stale_lease(client: FlyClient, app: str, machine_id: str) -> bool:
    """Force-clear a leaked lease (crashed worker): GET the lease, DELETE with its nonce.
    Only for operator recovery; any token holder can do this, so it is coordination, not security."""
    lease = await client.get_lease(app, machine_id)
    if lease is None:
        return False
    with contextlib.suppress(FlyNotFound):
        await client.release_lease(app, machine_id, lease.nonce)
    return True


__all__ = ["LeaseLost", "MachineLease", "RELEASE_TIMEOUT", "clear_stale_lease"]
