"""Files holding secrets or tenant data are private (0600) from the first byte.

The proof: the umask is 0 (a file created with the default mode would be 0644/0666) and every
chmod is forbidden (``os.chmod``, ``os.fchmod``, ``Path.chmod`` raise), so a file's mode when the
test looks at it is the mode it was created with: nothing could have narrowed it afterwards.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import text

from controlplane.db import migrate
from controlplane.db.session import Database
from controlplane.devkeys import ensure_vault_keys
from controlplane.errors import Refused
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator
from controlplane.private_files import check_private, prepare_database_file, write_private
from tests.support.db import file_database_url


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """umask 0 and every chmod refused: what a file is created with is what it keeps."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("chmod after creation: the file was readable in between")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    if hasattr(os, "lchmod"):
        monkeypatch.setattr(os, "lchmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_demo_env_file_is_created_private(no_chmod: None, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    settings = ensure_vault_keys(Console(file=io.StringIO()), env)
    assert settings.vault_keys is not None
    assert _mode(env) == 0o600
    assert env.read_text().count("CP_VAULT_KEYS=") == 1


def test_the_demo_appends_to_a_private_env_file_and_keeps_it_private(no_chmod: None, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    fd = os.open(env, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"CP_LOG_LEVEL=INFO\n")
    os.close(fd)
    ensure_vault_keys(Console(file=io.StringIO()), env)
    assert _mode(env) == 0o600
    assert env.read_text().startswith("CP_LOG_LEVEL=INFO\n") and "CP_VAULT_KEYS=" in env.read_text()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_the_demo_refuses_an_env_file_others_can_access(tmp_path: Path, mode: int) -> None:
    env = tmp_path / ".env"
    env.write_text("CP_VAULT_KEYS=dev1:" + "A" * 43 + "=\n")
    env.chmod(mode)
    with pytest.raises(Refused) as refused:
        ensure_vault_keys(Console(file=io.StringIO()), env)
    assert refused.value.exit_code == 3
    assert "chmod 600" in str(refused.value) and "AAAA" not in str(refused.value)
    assert _mode(env) == mode  # left as it was: the operator decides


def test_the_demo_refuses_an_env_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    target.chmod(0o600)
    (tmp_path / ".env").symlink_to(target)
    with pytest.raises(Refused, match="not a regular file"):
        check_private(tmp_path / ".env", "the .env file")


@pytest.mark.parametrize("backend", ["sqlite", "libsql"])
def test_the_database_and_its_wal_and_shm_files_are_created_private(
    no_chmod: None, tmp_path: Path, backend: str
) -> None:
    url = file_database_url(backend, tmp_path / "data" / "cp.db")
    (tmp_path / "data").mkdir()
    migrate.upgrade(url)

    async def write_and_look() -> dict[str, int]:
        db = Database.from_url(url)
        try:
            async with db.transaction() as s:
                await s.execute(text("CREATE TABLE probe (x TEXT)"))
                await s.execute(text("INSERT INTO probe VALUES ('tenant data')"))
            async with db.read() as s:  # the connection is open: WAL and SHM exist now
                await s.execute(text("SELECT x FROM probe"))
                return {p.name: _mode(p) for p in (tmp_path / "data").iterdir()}
        finally:
            await db.dispose()

    modes = asyncio.run(write_and_look())
    assert {"cp.db", "cp.db-wal", "cp.db-shm"} <= set(modes), modes
    assert set(modes.values()) == {0o600}, modes


def test_an_older_database_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    for name in ("old.db", "old.db-wal"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    prepare_database_file(path)
    assert _mode(path) == 0o600 and _mode(tmp_path / "old.db-wal") == 0o600


def test_the_emulator_snapshot_is_created_private_and_replaced_atomically(
    no_chmod: None, tmp_path: Path
) -> None:
    emulator = FlyEmulator(EmulatorOptions(latency="zero"))
    snapshot = tmp_path / "fly-emulator.json"
    emulator.snapshot_to(snapshot)
    assert _mode(snapshot) == 0o600
    os.umask(0o022)
    snapshot.unlink()
    snapshot.write_text("{}")  # an older snapshot, 0644
    assert _mode(snapshot) == 0o644
    emulator.snapshot_to(snapshot)
    assert _mode(snapshot) == 0o600
    assert FlyEmulator.load(snapshot, EmulatorOptions(latency="zero")).world.state.org == "test-org"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fly-emulator.json"]  # no temporary left


def test_write_private_leaves_nothing_behind_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(TypeError):
        write_private(target, 12345)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_an_embedded_replica_narrows_the_umask_before_the_sdk_writes_its_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from controlplane.db import libsql_driver

    seen: list[int] = []

    def fake_connect(database: str, **kwargs: object) -> object:
        current = os.umask(0)
        os.umask(current)
        seen.append(current)
        raise RuntimeError("no server here")

    monkeypatch.setattr(libsql_driver.libsql, "connect", fake_connect)
    previous = os.umask(0o022)
    try:
        with pytest.raises(Exception, match="no server here|Failed|replica"):
            asyncio.run(libsql_driver.connect(str(tmp_path / "replica.db"), sync_url="http://127.0.0.1:9"))
    finally:
        os.umask(previous)
    assert seen == [0o077]
