"""Org-wide machine listing (``GET /orgs/{org}/machines``) as an async iterator (fly-machines.md,
"Fleet polling").

Follows ``next_cursor`` until it is empty, dedupes machines across pages, tolerates short or empty
pages (``limit`` is advisory) and stops if a cursor repeats. After the loop, ``error_regions`` tells
whether the result is partial (then missing machines must NOT be treated as deleted) and
``last_updated_at`` is the high-water mark for the next ``updated_after`` (minus an overlap).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from controlplane.fly.client import FlyClient
from controlplane.fly.models import OrgMachine, OrgMachineQuery

#: Safety net against a server that keeps handing out new cursors on empty pages.
MAX_EMPTY_PAGES = 50


class OrgMachineScan:
    """``async for machine in OrgMachineScan(fly, OrgMachineQuery(updated_after=...))``."""

    def __init__(self, client: FlyClient, filters: OrgMachineQuery | None = None) -> None:
        self.client = client
        self.filters = filters or OrgMachineQuery()
        self.error_regions: set[str] = set()
        self.last_updated_at: str | None = None
        self.pages = 0
        self.complete = False

    @property
    def partial(self) -> bool:
        return bool(self.error_regions) or not self.complete

    def __aiter__(self) -> AsyncIterator[OrgMachine]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[OrgMachine]:
        cursor: str | None = None
        seen_cursors: set[str] = set()
        seen: set[tuple[str | None, str]] = set()
        empty_pages = 0
        while True:
            page = await self.client.list_org_machines_page(self.filters, cursor=cursor)
            self.pages += 1
            self.error_regions.update(page.error_regions or [])
            if page.last_updated_at:
                self.last_updated_at = page.last_updated_at
            empty_pages = empty_pages + 1 if not page.machines else 0
            for machine in page.machines:
                key = (machine.app_name, machine.id)
                if key in seen:
                    continue
                seen.add(key)
                yield machine
            next_cursor = page.next_cursor
            if not next_cursor or next_cursor in seen_cursors or empty_pages >= MAX_EMPTY_PAGES:
                self.complete = not next_cursor
                return
            seen_cursors.add(next_cursor)
            cursor = next_cursor

    async def collect(self) -> list[OrgMachine]:
        return [m async for m in self]


__all__ = ["MAX_EMPTY_PAGES", "OrgMachineScan"]
