"""Database errors never carry bound values (ciphertexts, fingerprints) in their messages; the CLI
turns unexpected errors into one redacted line and exit code 1, never a raw traceback."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from controlplane.db.models import Secret


async def test_integrity_errors_do_not_show_bound_values(db, vault, tenant_factory) -> None:
    tenant = await tenant_factory()
    stored = vault.encrypt("a-secret-value-1234", tenant_id=tenant.id, name="provider:openai")
    async with db.transaction() as s:
        s.add(Secret(tenant_id=tenant.id, name="provider:openai", key_id="k2", value=stored))
    with pytest.raises(IntegrityError) as info:
        async with db.transaction() as s:
            s.add(Secret(tenant_id=tenant.id, name="provider:openai", key_id="k2", value=stored))
    text = str(info.value) + repr(info.value)
    assert stored not in text
    assert stored.split(":")[2][:24] not in text
    assert "hidden" in text.lower()  # SQLAlchemy's "[SQL parameters hidden due to hide_parameters=True]"


def test_cli_unexpected_errors_are_one_redacted_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CP_DATABASE_URL": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}",
        "CP_VAULT_KEYS": "k1:" + base64.b64encode(bytes(32)).decode(),
        "CP_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "controlplane", "keys", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1
    # The boundary names the database (its URL masked) and SQLite's reason, in one line.
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot open the database file" in errors[0], done.stderr
    assert env["CP_VAULT_KEYS"].split(":")[1] not in done.stderr + done.stdout
    assert not done.stderr.lstrip().startswith("Traceback")
