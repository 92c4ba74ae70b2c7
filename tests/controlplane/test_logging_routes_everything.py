"""Every logger in the process goes through the one redacting handler; DEBUG never prints bound SQL
parameters or result rows; CP_DATABASE_ECHO logs statements without parameters; vault key ids have one
alphabet and the ciphertext redactor matches every id the settings accept."""

from __future__ import annotations

import ast
import asyncio
import base64
import io
import logging
import logging.config
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn.config
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import text

from controlplane.db.session import Database
from controlplane.logging import LIBRARY_LOGGERS, configure_logging
from controlplane.redaction import MASK, redact_text
from controlplane.settings import SettingsError, load_settings, parse_key_ring
from controlplane.vault import Vault, valid_key_id
from tests.support.db import file_database_url

ROOT = Path(__file__).resolve().parents[2]
OPENAI = "sk-proj-" + "Z9" * 30
PARAM = "bound-parameter-value-7d3f"  # no secret shape: only the no-parameters rule hides it
ROW = "result-row-value-9c1e"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=out)
    yield out
    configure_logging(level="INFO", fmt="json")


def test_uvicorn_default_handlers_are_replaced_by_the_redacting_one() -> None:
    # uvicorn's default configuration (what `uvicorn.run` installs unless log_config=None) gives its
    # loggers handlers of their own that print past the redaction.
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    out = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=out)
    try:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application: body had %s", OPENAI)
        logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /?key=%s" 500', OPENAI)
    finally:
        configure_logging(level="INFO", fmt="json")
    assert OPENAI not in out.getvalue() and out.getvalue().count(MASK) == 2
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.handlers == [] and logger.propagate, name


def test_every_uvicorn_server_in_the_code_leaves_logging_alone() -> None:
    """Static guard: each uvicorn.run / uvicorn.Config call passes log_config=None (otherwise uvicorn
    installs its own handlers when it starts, after our configuration)."""
    offenders = []
    for package in ("controlplane", "workers", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("run", "Config")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "uvicorn"
                ):
                    given_none = any(
                        k.arg == "log_config" and isinstance(k.value, ast.Constant) and k.value.value is None
                        for k in node.keywords
                    )
                    if not given_none:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("backend", ["sqlite", "libsql"])
@pytest.mark.parametrize("echo", [False, True])
def test_debug_logging_never_prints_bound_parameters_or_rows(
    debug_log: io.StringIO, tmp_path: Path, backend: str, echo: bool
) -> None:
    async def go() -> None:
        db = Database.from_url(file_database_url(backend, tmp_path / "t.db"), echo=echo)
        try:
            async with db.transaction() as s:
                await s.execute(text("CREATE TABLE t (v TEXT)"))
                await s.execute(text("INSERT INTO t VALUES (:v)"), {"v": PARAM})
                await s.execute(text("INSERT INTO t VALUES (:v)"), {"v": ROW})
            async with db.read() as s:
                assert len((await s.execute(text("SELECT v FROM t WHERE v != :x"), {"x": PARAM})).all()) == 1
        finally:
            await db.dispose()

    asyncio.run(go())
    out = debug_log.getvalue()
    assert PARAM not in out and ROW not in out
    if echo:  # CP_DATABASE_ECHO: the statements, never their values
        assert "INSERT INTO t VALUES (?)" in out and "SELECT v FROM t WHERE v != ?" in out
        assert "parameters hidden" in out
    else:
        assert "INSERT INTO t" not in out


def test_database_echo_setting_reaches_the_engines_through_logging(tmp_path: Path) -> None:
    out = io.StringIO()
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'e.db'}", database_echo=True)
    configure_logging(level="WARNING", fmt="json", stream=out, sql_echo=settings.database_echo)
    try:

        async def go() -> None:
            db = Database.from_url(settings.database_url)
            try:
                async with db.read() as s:
                    await s.execute(text("SELECT :p"), {"p": PARAM})
            finally:
                await db.dispose()

        asyncio.run(go())
    finally:
        configure_logging(level="INFO", fmt="json")
    assert "SELECT ?" in out.getvalue() and PARAM not in out.getvalue()


def _ring(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(bytes(range(32))).decode()}"


@pytest.mark.parametrize("key_id", ["kéy1", "ｋ1", "k١", "key\u200b1", "k 1", "x" * 33, "ключ"])
def test_settings_refuse_key_ids_outside_the_one_alphabet(key_id: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(vault_keys=_ring(key_id))
    assert "CP_VAULT_KEYS" in str(refused.value) and "ASCII" in str(refused.value)
    assert not valid_key_id(key_id)


@hsettings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_every_key_id_the_settings_accept_is_matched_by_the_ciphertext_redactor(key_id: str) -> None:
    try:
        ring = parse_key_ring(_ring(key_id))
    except ValueError:
        assert not valid_key_id(key_id.strip())
        return
    vault = Vault(ring)
    stored = vault.encrypt("plaintext-" + "x" * 20, tenant_id="t1", name="provider:openai")
    for context in (stored, f"value={stored}", f"('{stored}', 1)", f"_{stored}_"):
        assert re.search(r"v1:\S*:", redact_text(context)) is None, context
        assert stored not in redact_text(context)


@hsettings(max_examples=20, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True))
def test_keys_generate_settings_and_vault_agree_on_key_ids(key_id: str) -> None:
    from typer.testing import CliRunner

    from controlplane.cli import app

    entry = CliRunner().invoke(app, ["keys", "generate", f"--id={key_id}"])
    assert entry.exit_code == 0, entry.output
    assert parse_key_ring(entry.output.strip())[0][0] == key_id


async def test_debug_with_echo_on_every_backend_shows_statements_never_values(db: Database) -> None:
    out = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=out, sql_echo=True)
    try:
        async with db.read() as s:
            assert (await s.execute(text("SELECT :p AS v"), {"p": PARAM})).scalar_one() == PARAM
    finally:
        configure_logging(level="INFO", fmt="json")
    assert "SELECT" in out.getvalue() and "parameters hidden" in out.getvalue()
    assert PARAM not in out.getvalue()
