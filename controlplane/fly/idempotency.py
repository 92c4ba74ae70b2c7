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
from typing import TYPE_CHECKING

import structlog

from controlplane.fly.errors import (
    FlyAlreadyExists,
    FlyAppOwnedElsewhere,
    FlyError,
    FlyForbidden,
    FlyNameTaken,
    FlyNotFound,
)
from controlplane.fly.models import GONE_STATES, App, CreateMachineRequest, Machine

if TYPE_CHECKING:
    from controlplane.fly.client import FlyClient

log = structlog.get_logger(__name__)

#: ``config.metadata`` key holding the create tag.
CREATE_TAG_KEY = "cp_create_tag"


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
    deadline = clock.monotonic() + not_found_grace
    delay = 0.2
    while True:
        try:
            machines = await client.list_machines(app, metadata={CREATE_TAG_KEY: tag})
            break
        except FlyNotFound:
            if clock.monotonic() + delay > deadline:
                raise
            log.info("fly.tag_lookup_not_found_retry", app=app, tag=tag)
            await clock.sleep(delay)
            delay = min(delay * 2, 1.0)
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
    max_backoff: float = 5.0,
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
    last_error: FlyError | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            machine = await client.create_machine(app, tagged)
            return machine
        except FlyAlreadyExists as exc:
            # Name collision: most likely our own earlier (ambiguous) attempt, which the list may
            # not show yet. Look again while it catches up; never create under another name.
            for lookup in range(max(1, lookups) + 1):
                found = await find_machines_by_tag(client, app, tag)
                if found:
                    log.info(
                        "fly.create_adopted", app=app, tag=tag, machine_id=found[0].id, reason="name_exists"
                    )
                    return found[0]
                if lookup < max(1, lookups):
                    await clock.sleep(lookup_delay)
            raise exc
        except FlyError as exc:
            if not exc.ambiguous:
                raise
            last_error = exc
            log.warning("fly.create_ambiguous", app=app, tag=tag, attempt=attempt, **exc.log_fields())
        for _ in range(max(1, lookups)):
            await clock.sleep(lookup_delay)
            found = await find_machines_by_tag(client, app, tag)
            if found:
                log.info("fly.create_adopted", app=app, tag=tag, machine_id=found[0].id, reason="ambiguous")
                return found[0]
        if attempt < max_attempts:
            await clock.sleep(min(max_backoff, 0.5 * 2**attempt))
    assert last_error is not None
    raise last_error


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
) -> App:
    """Create the app, or adopt it if it already exists in our org (ambiguous answer, 422
    ``name_taken``, or a previous crashed attempt). Raises :class:`FlyAppOwnedElsewhere` if the
    name belongs to someone else."""
    org = org or client.org
    clock = client.clock
    last_error: FlyError | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            return await client.create_app(name, org=org, network=network)
        except (FlyNameTaken, FlyAlreadyExists) as exc:
            adopted = await _adopt(client, name, org)
            if adopted is not None:
                log.info("fly.app_adopted", app=name, reason="name_taken")
                return adopted
            last_error = exc  # taken but now gone (being deleted?): try again
        except FlyError as exc:
            if not exc.ambiguous:
                raise
            last_error = exc
            log.warning("fly.app_create_ambiguous", app=name, attempt=attempt, **exc.log_fields())
            await clock.sleep(lookup_delay)
            adopted = await _adopt(client, name, org)
            if adopted is not None:
                log.info("fly.app_adopted", app=name, reason="ambiguous")
                return adopted
        if attempt < max_attempts:
            await clock.sleep(min(5.0, 0.5 * 2**attempt))
    assert last_error is not None
    raise last_error


__all__ = [
    "CREATE_TAG_KEY",
    "create_app_idempotent",
    "create_machine_idempotent",
    "find_machines_by_tag",
    "machine_name_for_tag",
    "tag_request",
]
