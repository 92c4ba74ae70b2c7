"""Create-or-adopt for machines and apps: never create a second one because a call was ambiguous.

Invariant 2 (DESIGN.md): a machine create that ends in 408, 5xx or a transport error may or may not
have created the machine. So every create carries a unique tag in ``config.metadata``
(:data:`CREATE_TAG_KEY`), and before any retry we LIST the app's machines filtered by that tag; a hit
is adopted, and we only create again when the lookup confirms the machine is absent.

CALLER CONTRACT: generate the tag (e.g. a ULID) and PERSIST IT in the database *before* calling
:func:`create_machine_idempotent`, and reuse the same tag until a machine id has been stored. Then a
worker that crashes mid-create is harmless: the next attempt (same tag) first looks the tag up and
adopts what the crashed attempt created. A fresh random tag per call would defeat the lookup.

Apps have globally unique, deterministic names, so app create needs no tag: an ambiguous answer or
422 ``name_taken`` is resolved with ``GET /apps/{name}`` — in our org → adopt; elsewhere →
:class:`FlyAppOwnedElsewhere`.
"""

from __future__ import annotations

import re

import structlog

from controlplane.fly.client import FlyClient
from controlplane.fly.errors import (
    FlyAlreadyExists,
    FlyAppOwnedElsewhere,
    FlyError,
    FlyForbidden,
    FlyNameTaken,
    FlyNotFound,
)
from controlplane.fly.models import GONE_STATES, App, CreateMachineRequest, Machine
from controlplane.retry import Backoff, TryAgain, retry_call

log = structlog.get_logger(__name__)

#: ``config.metadata`` key holding the create tag.
CREATE_TAG_KEY = "cp_create_tag"
#: Between creates confirmed absent after an ambiguous answer (reference: "backoff to 5 s").
CREATE_BACKOFF = Backoff(initial=1.0, cap=5.0)
#: Between tag lookups answered 404 right after the app was created.
LOOKUP_BACKOFF = Backoff(initial=0.2, cap=1.0)


def machine_name_for_tag(tag: str) -> str:
    """A deterministic machine name for a create tag. Fly refuses a second machine with the same
    name in an app (409 ``already_exists``), so even a create retried while the (eventually
    consistent) list still hides the first one cannot make a duplicate."""
    return ("cp-" + re.sub(r"[^a-z0-9-]", "-", tag.lower()))[:63]


def tag_request(request: CreateMachineRequest, tag: str) -> CreateMachineRequest:
    """A copy of ``request`` whose ``config.metadata`` carries ``tag`` (and, if the caller chose no
    name, whose name is derived from the tag)."""
    if not tag or len(tag) > 128:
        raise ValueError("the create tag must be 1-128 characters")
    tagged = request.model_copy(deep=True)
    if tagged.name is None:
        tagged.name = machine_name_for_tag(tag)
    metadata = dict(tagged.config.metadata or {})
    existing = metadata.get(CREATE_TAG_KEY)
    if existing is not None and existing != tag:
        raise ValueError(f"config.metadata.{CREATE_TAG_KEY} already holds a different tag")
    metadata[CREATE_TAG_KEY] = tag
    tagged.config.metadata = metadata
    return tagged


#: A 404 on the tag lookup right after the app was created is read-after-write lag (fly-go retries
#: list 404s for ~5 s after an app create): keep looking this long before letting it through.
LOOKUP_NOT_FOUND_GRACE = 5.0


async def find_machines_by_tag(
    client: FlyClient, app: str, tag: str, *, not_found_grace: float = LOOKUP_NOT_FOUND_GRACE
) -> list[Machine]:
    """Live machines of ``app`` carrying ``tag``, oldest first. The server-side filter is checked
    client-side too (a server ignoring the filter must not make us adopt a stranger).

    A 404 (app "not found") is NOT a confirmed miss — a brand-new app answers 404 for a moment —
    so it is retried for ``not_found_grace`` seconds and then raised (callers never create on it)."""
    clock = client.clock
    machines = await retry_call(
        lambda: client.list_machines(app, metadata={CREATE_TAG_KEY: tag}),
        retry_on=FlyNotFound,
        clock=clock,
        backoff=LOOKUP_BACKOFF,
        deadline=clock.monotonic() + not_found_grace,
        rng=client.rng,
        before_retry=lambda _exc, _delay: log.info("fly.tag_lookup_not_found_retry", app=app, tag=tag),
    )
    hits = [m for m in machines if m.metadata.get(CREATE_TAG_KEY) == tag and m.state not in GONE_STATES]
    hits.sort(key=lambda m: (m.created_at or "", m.id))
    if len(hits) > 1:
        log.warning("fly.duplicate_tagged_machines", app=app, tag=tag, machine_ids=[m.id for m in hits])
    return hits


async def create_machine_idempotent(
    client: FlyClient,
    app: str,
    request: CreateMachineRequest,
    tag: str,
    *,
    lookup_first: bool = True,
    lookup_delay: float = 1.5,
    lookups: int = 2,
    max_attempts: int = 4,
    backoff: Backoff = CREATE_BACKOFF,
) -> Machine:
    """Create the machine, or adopt the one an earlier (ambiguous or crashed) attempt made.

    1. ``lookup_first``: list by tag and adopt a hit (a crashed earlier attempt with the same tag).
    2. Create. Success → return. Unambiguous error → raise.
    3. Ambiguous (408 / 5xx / transport error after sending): wait ``lookup_delay`` (the list is
       eventually consistent), list by tag up to ``lookups`` times; hit → adopt; confirmed absent →
       back off and create again (at most ``max_attempts`` creates). A failing lookup raises: we
       never create without a confirmed miss.
    """
    tagged = tag_request(request, tag)
    clock = client.clock
    if lookup_first:
        found = await find_machines_by_tag(client, app, tag)
        if found:
            log.info("fly.create_adopted", app=app, tag=tag, machine_id=found[0].id, reason="preexisting")
            return found[0]
    attempt = 0
    # The list is eventually consistent: a tag lookup is repeated ``lookup_delay`` apart.
    listing_lag = Backoff(initial=lookup_delay, factor=1.0, cap=lookup_delay, jitter=False)

    async def adopt_listed(reason: str, lookups_left: int, give_up: BaseException) -> Machine:
        """Adopt the first tagged machine the listing shows, or raise ``give_up``. A failing
        lookup raises its own error: never a create without a confirmed miss."""

        async def lookup() -> Machine:
            found = await find_machines_by_tag(client, app, tag)
            if not found:
                raise TryAgain(give_up)
            log.info("fly.create_adopted", app=app, tag=tag, machine_id=found[0].id, reason=reason)
            return found[0]

        return await retry_call(
            lookup, clock=clock, backoff=listing_lag, attempts=lookups_left, rng=client.rng
        )

    async def create_or_adopt() -> Machine:
        nonlocal attempt
        attempt += 1
        try:
            return await client.create_machine(app, tagged)
        except FlyAlreadyExists as exc:
            # Name collision: most likely our own earlier (ambiguous) attempt, which the list may
            # not show yet. Look again while it catches up; never create under another name.
            return await adopt_listed("name_exists", max(1, lookups) + 1, exc)
        except FlyError as exc:
            if not exc.ambiguous:
                raise
            log.warning("fly.create_ambiguous", app=app, tag=tag, attempt=attempt, **exc.log_fields())
            unseen = exc
        await clock.sleep(lookup_delay)
        # Still not listed after every lookup: confirmed absent. The TryAgain given up with reaches
        # the create loop below, which creates again after its backoff (or raises ``unseen``).
        return await adopt_listed("ambiguous", max(1, lookups), TryAgain(unseen))

    return await retry_call(
        create_or_adopt, clock=clock, backoff=backoff, attempts=max_attempts, rng=client.rng
    )


def _is_ours(app: App, org: str) -> bool:
    # A 200 on GET /apps/{name} with an org token already implies visibility; check the slug when
    # Fly includes it.
    if app.organization is None or app.organization.slug is None:
        return True
    return app.organization.slug == org


async def _adopt(client: FlyClient, name: str, org: str) -> App | None:
    try:
        app = await client.get_app(name)
    except FlyNotFound:
        return None
    except FlyForbidden as exc:
        raise FlyAppOwnedElsewhere(
            f"app name {name!r} is taken outside organisation {org!r}",
            status_code=exc.status_code,
            request_id=exc.request_id,
        ) from None
    if _is_ours(app, org):
        return app
    raise FlyAppOwnedElsewhere(f"app name {name!r} is taken outside organisation {org!r}")


async def create_app_idempotent(
    client: FlyClient,
    name: str,
    *,
    org: str | None = None,
    network: str | None = None,
    max_attempts: int = 4,
    lookup_delay: float = 1.0,
    backoff: Backoff = CREATE_BACKOFF,
) -> App:
    """Create the app, or adopt it if it already exists in our org (ambiguous answer, 422
    ``name_taken``, or a previous crashed attempt). Raises :class:`FlyAppOwnedElsewhere` if the
    name belongs to someone else."""
    owner = org or client.org
    clock = client.clock
    attempt = 0

    async def create_or_adopt() -> App:
        nonlocal attempt
        attempt += 1
        try:
            return await client.create_app(name, org=owner, network=network)
        except (FlyNameTaken, FlyAlreadyExists) as exc:
            adopted = await _adopt(client, name, owner)
            if adopted is None:
                raise TryAgain(exc) from None  # taken but now gone (being deleted?): try again
            log.info("fly.app_adopted", app=name, reason="name_taken")
            return adopted
        except FlyError as exc:
            if not exc.ambiguous:
                raise
            log.warning("fly.app_create_ambiguous", app=name, attempt=attempt, **exc.log_fields())
            unseen = exc
        await clock.sleep(lookup_delay)
        adopted = await _adopt(client, name, owner)
        if adopted is None:
            raise TryAgain(unseen)
        log.info("fly.app_adopted", app=name, reason="ambiguous")
        return adopted

    return await retry_call(
        create_or_adopt, clock=clock, backoff=backoff, attempts=max_attempts, rng=client.rng
    )


__all__ = [
    "CREATE_TAG_KEY",
    "create_app_idempotent",
    "create_machine_idempotent",
    "find_machines_by_tag",
    "machine_name_for_tag",
    "tag_request",
]
