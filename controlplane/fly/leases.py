"""Machine lease as an async context manager (fly-machines.md, "Leases").

    async with MachineLease(fly, app, machine_id) as lease:
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

import structlog

from controlplane.fly.client import FlyClient
from controlplane.fly.errors import FlyError, FlyLeaseHeld, FlyNotFound, LeaseLost
from controlplane.fly.models import Lease
from controlplane.retry import Backoff, TryAgain, retry_call

log = structlog.get_logger(__name__)

#: Acquires answered ambiguously (and found not to have happened) that are tried again.
AMBIGUOUS_ACQUIRE_RETRIES = 3
#: Pause before trying again an acquire that was answered ambiguously and did not happen.
AMBIGUOUS_ACQUIRE_BACKOFF = Backoff(initial=0.2, cap=1.0)
#: Waiting for another holder's lease to go, up to ``acquire_timeout`` (flyctl: 0.5 s doubling).
HELD_BACKOFF = Backoff(initial=0.5, cap=4.0)
#: How long the release call may take before we give up (the lease then simply expires).
RELEASE_TIMEOUT = 10.0
#: Keeps release tasks referenced until they finish (asyncio only holds weak references).
_background: set[asyncio.Task[None]] = set()


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
        self.lease = await retry_call(
            self._acquire,
            retry_on=FlyLeaseHeld,
            clock=clock,
            backoff=HELD_BACKOFF,
            deadline=clock.monotonic() + self.acquire_timeout,
            rng=self.client.rng,
        )
        self._refresher = asyncio.create_task(self._refresh_loop(), name=f"lease-refresh-{self.machine_id}")
        return self

    async def _acquire(self) -> Lease:
        """Acquire, trying again (a few times) an acquire that was answered ambiguously and did not
        happen. Raises :class:`FlyLeaseHeld` when someone else holds the lease."""
        return await retry_call(
            self._acquire_once,
            clock=self.client.clock,
            backoff=AMBIGUOUS_ACQUIRE_BACKOFF,
            attempts=AMBIGUOUS_ACQUIRE_RETRIES + 1,
            rng=self.client.rng,
        )

    async def _acquire_once(self) -> Lease:
        """One acquire; an ambiguous answer is resolved by reading the lease back (module docstring).
        Raises :class:`TryAgain` when it did not happen, :class:`FlyLeaseHeld` when someone holds it."""
        marker = secrets.token_hex(6)
        description = f"{self.description} [{marker}]" if self.description else f"[{marker}]"
        try:
            return await self.client.acquire_lease(
                self.app, self.machine_id, ttl=self.ttl, description=description
            )
        except FlyError as exc:
            if not exc.ambiguous:
                raise
            unseen = exc
        log.warning(
            "fly.lease_acquire_ambiguous", app=self.app, machine_id=self.machine_id, **unseen.log_fields()
        )
        found = await self.client.get_lease(self.app, self.machine_id)  # a failure raises
        if found is None:  # the acquire did not happen (or already expired)
            raise TryAgain(unseen)
        if found.description and marker in found.description:
            log.info("fly.lease_adopted", app=self.app, machine_id=self.machine_id)
            return found  # ours: its nonce is now known
        raise FlyLeaseHeld(  # someone else's lease: the same as a 409
            f"machine {self.machine_id} lease currently held by {found.owner or 'another holder'}",
            status_code=409,
        )

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


__all__ = ["MachineLease", "RELEASE_TIMEOUT", "clear_stale_lease"]
