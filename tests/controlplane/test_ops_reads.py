"""The ops CLI's reads, in process: `--since` and filter parsing, the audit tail's filters (exact,
prefix with LIKE's wildcards taken literally, since), and a follow poll that still returns a row
committed late with an older timestamp, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane import audit
from controlplane.db.models import utcnow
from controlplane.db.session import Database
from controlplane.errors import BadInput
from controlplane.ops.audit_tail import SETTLE, AuditFilter, check_filter, newer, parse_since, tail

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - timedelta(seconds=30)),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T09:30:00+01:00", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_since_reads_relative_and_iso_times(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "5 minutes", "-2h", "2w", "12/01/2026"])
def test_a_bad_since_is_bad_input_naming_the_flag(text: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_since(text, NOW)
    assert caught.value.field == "--since"


def test_filters_are_names_or_prefixes_only() -> None:
    assert check_filter("cli:*", "--actor") == "cli:*" and check_filter(None, "--actor") is None
    for bad in ("cli ops", "a%", "*", "tenant.*.x*", "x" * 200):
        with pytest.raises(BadInput):
            check_filter(bad, "--action")


async def test_tail_filters_and_a_follow_poll_catches_a_late_commit(db: Database) -> None:
    async with db.transaction() as s:
        audit.record(s, actor="cli:ops", action="tenant.stop", reason="one")
        audit.record(s, actor="cli:ops_2", action="tenant.start", reason="two")
        audit.record(s, actor="worker", action="machine.created", reason="three")
        old = audit.record(s, actor="cli:ops", action="tenant.stop", reason="old")
        old.at = utcnow() - timedelta(hours=3)
    async with db.read() as s:
        everything = await tail(s, AuditFilter(), limit=100)
        assert [r["reason"] for r in everything] == ["one", "two", "three", "old"]  # id order
        assert [r["reason"] for r in await tail(s, AuditFilter(), limit=2)] == ["three", "old"]
        by_prefix = await tail(s, AuditFilter(actor="cli:*", since=utcnow() - timedelta(hours=1)), limit=100)
        assert [r["reason"] for r in by_prefix] == ["one", "two"]
        # `_` is a literal underscore, not LIKE's any-character
        assert [r["reason"] for r in await tail(s, AuditFilter(actor="cli:ops_*"), limit=100)] == ["two"]
        assert [r["reason"] for r in await tail(s, AuditFilter(action="tenant.start"), limit=100)] == ["two"]
        newest = max(datetime.fromisoformat(r["at"]) for r in everything)
        seen = {r["id"] for r in everything}
    # A transaction that began earlier commits now: a higher id, an older timestamp.
    async with db.transaction() as s:
        late = audit.record(s, actor="worker", action="machine.started", reason="late")
        late.at = newest - SETTLE / 2
        lost = audit.record(s, actor="worker", action="machine.started", reason="too late")
        lost.at = newest - SETTLE * 2
    async with db.read() as s:
        fresh = await newer(s, AuditFilter(actor="worker"), newest_at=newest, seen=seen)
        assert [r["reason"] for r in fresh] == ["late"]
        assert (
            await newer(s, AuditFilter(actor="worker"), newest_at=newest, seen=seen | {fresh[0]["id"]}) == []
        )
