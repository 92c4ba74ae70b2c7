"""``controlplane db ...``: schema migrations."""

from __future__ import annotations

import re

import typer

from controlplane.cli._common import console, settings
from controlplane.db.urls import redact_database_url

db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)

#: What ``--revision`` may be: ``head``/``heads``/``base``, a revision id (or a prefix of one), an
#: optional ``branch@`` and a relative step (``-1``, ``head-1``, ``+2``). Anything else (a path, a
#: pasted value) is refused before Alembic sees it.
_REVISION = re.compile(r"(?:[A-Za-z0-9_]{1,64}@)?(?:[A-Za-z0-9_]{1,64})?(?:[+-][0-9]{1,4})?")


def _checked_revision(revision: str) -> str:
    from controlplane.errors import BadInput
    from controlplane.limits import describe_given

    if not revision or not _REVISION.fullmatch(revision):
        raise BadInput(
            "--revision",
            f"not a revision ({describe_given(revision)}); expected head, base, a revision id or -1",
        )
    return revision


@db_app.command("upgrade")
def upgrade(revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    revision = _checked_revision(revision)
    from controlplane.db import migrate  # Alembic only when needed (a second off every other command)

    s = settings()
    migrate.upgrade(s.database_url, revision)
    console.print(f"database {redact_database_url(s.database_url)} is at revision {revision}")


@db_app.command("downgrade")
def downgrade(revision: str = typer.Option(..., help="Target revision ('base' = empty).")) -> None:
    """Revert migrations down to REVISION."""
    revision = _checked_revision(revision)
    from controlplane.db import migrate  # Alembic only when needed (a second off every other command)

    s = settings()
    migrate.downgrade(s.database_url, revision)
    console.print(f"database {redact_database_url(s.database_url)} downgraded to {revision}")


@db_app.command("check")
def check() -> None:
    """Fail if the models and the migrations disagree (schema drift)."""
    from controlplane.db import migrate  # Alembic only when needed (a second off every other command)

    s = settings()
    migrate.check(s.database_url)
    console.print("no drift between models and migrations")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
