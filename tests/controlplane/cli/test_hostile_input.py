"""Hostile and careless input through the one error boundary (controlplane/cli/boundary.py).

Every command runs in process through ``boundary.run`` (what the console script runs), with its
output captured. Whatever the input (files, stdin, options, environment variables, ``.env``): never a
traceback, one ``error:`` line, no secret-looking value in any output, and the exit code class of
the boundary's table (2 bad input, 1 unreachable dependency, 0 success).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agents_config.providers import PROVIDER_IDS
from controlplane.cli import app, boundary
from controlplane.logging import configure_logging
from controlplane.redaction import redact_text
from controlplane.settings import reset_settings_cache
from tests.support.db import POSTGRES_URL, TEST_VAULT_KEYS

EXAMPLES = Path(__file__).resolve().parents[3] / "agents_config" / "examples"
SECRET = "sk-ant-api03-" + "Qx7" * 14  # an Anthropic-shaped key
PLAIN_SECRET = "Zr4kQ9wLm2Xv8TbN5cHy3JpD6fGs1aEu"  # unprefixed (Mistral-like): no known shape
FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@contextmanager
def _workdir() -> Iterator[Path]:
    previous = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(previous)


def invoke(
    args: list[str], *, stdin: str | bytes | None = None, env: Mapping[str, str | None] | None = None
) -> Outcome:
    """``controlplane <args>`` in process, behind the boundary, settings read afresh."""
    reset_settings_cache()
    handlers = list(logging.getLogger().handlers)
    environment: dict[str, str | None] = {"CP_PLAN_CATALOG": None, "CP_LOG_LEVEL": "WARNING", **(env or {})}
    try:
        with CliRunner().isolation(input=stdin, env=environment) as (out, err, _):
            # Log records written before the command configures logging (python-dotenv's warnings
            # about a bad .env) go to this run's stderr, as they would in a fresh process.
            configure_logging(level="WARNING", fmt="json")
            code = boundary.run(app, args)
            return Outcome(
                code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")
            )
    finally:
        logging.getLogger().handlers = handlers
        reset_settings_cache()


def assert_clean(outcome: Outcome, *secrets: str) -> None:
    """No traceback, at most one error line, nothing secret-looking, none of ``secrets``."""
    text = outcome.output
    assert "Traceback" not in text and 'File "' not in text, text
    assert sum(line.startswith("error:") for line in outcome.stderr.splitlines()) <= 1, outcome.stderr
    for secret in secrets:
        assert secret not in text
    assert redact_text(text) == text, text


@pytest.fixture(autouse=True)
def _debug_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "state" / "debug.log"
    monkeypatch.setenv("CP_DEBUG_LOG", str(log))
    return log


# --- the cases named in the issue ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (b'{"plan": ' + b"9" * 5000 + b"}", "holds a number longer than 40 digits"),
    ],
)
def test_bad_spec_files_are_one_line_and_exit_2(content: bytes, reason: str) -> None:
    with _workdir() as tmp:
        (tmp / "spec.json").write_bytes(content)
        result = invoke(["agent-config", "render", "--spec", "spec.json"])
    assert result.code == 2
    assert result.stderr.strip() == f"error: spec.json: {reason}" or result.stderr.startswith(
        f"error: spec.json: {reason}"
    )
    assert_clean(result)


def test_an_endless_spec_is_refused_after_the_limit() -> None:
    result = invoke(["agent-config", "render", "--spec", "/dev/zero"])
    assert result.code == 2 and "error: /dev/zero: larger than the limit of 1,048,576 bytes" in result.stderr
    assert_clean(result)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xc3\x28name = 1", "not UTF-8 text"),
        (b"a = " + b"[" * 100_000, "nested deeper than 32 levels"),
        (b"a = " + b"9" * 5000, "holds a number longer than 40 digits"),
        (b"[" + b".".join([b"x"] * 100) + b"]", "nested deeper than 32 levels"),
    ],
)
def test_bad_catalogs_are_one_line_and_exit_2(content: bytes, reason: str) -> None:
    with _workdir() as tmp:
        (tmp / "plans.toml").write_bytes(content)
        example = str(next(EXAMPLES.glob("*.json")))
        for args in (
            ["agent-config", "plans", "--catalog", "plans.toml"],
            ["agent-config", "render", "--spec", example, "--catalog", "plans.toml"],
        ):
            result = invoke(args)
            assert result.code == 2, result.output
            assert f"plans.toml: {reason}" in result.stderr
            assert_clean(result)


def test_an_unknown_field_shaped_like_a_key_is_not_echoed() -> None:
    spec = (EXAMPLES / sorted(p.name for p in EXAMPLES.glob("*.json"))[0]).read_text()
    with _workdir() as tmp:
        (tmp / "spec.json").write_text(spec.replace("{", f'{{"{PLAIN_SECRET}": 1, ', 1))
        catalog = (EXAMPLES.parent / "catalogs" / "default.toml").read_text()
        (tmp / "plans.toml").write_text(
            catalog.replace("[plans.pro]\n", f"[plans.pro]\n{PLAIN_SECRET} = 1\n")
        )
        spec_result = invoke(["agent-config", "render", "--spec", "spec.json"])
        catalog_result = invoke(["agent-config", "plans", "--catalog", "plans.toml"])
    for result in (spec_result, catalog_result):
        assert result.code == 2
        assert "a 32-character value starting 'Zr'" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
        assert_clean(result, PLAIN_SECRET)


def test_a_pasted_key_as_provider_is_described_never_echoed() -> None:
    for pasted in (SECRET, PLAIN_SECRET):
        result = invoke(["byok", "check", "--provider", pasted], stdin="")
        assert result.code == 2 and "--provider: unknown provider a" in result.stderr
        assert_clean(result, pasted)


def test_endless_stdin_is_refused_after_the_limit() -> None:
    flood = SECRET * 500  # 27,500 characters: a key is never this long
    for args in (
        ["byok", "check", "--provider", "anthropic"],
        ["tenant", "set-key", "t1", "--provider", "anthropic"],
    ):
        result = invoke(args, stdin=flood)
        assert result.code == 2 and "(stdin): longer than 16,384 characters" in result.stderr, result.output
        assert_clean(result, SECRET)


def test_a_non_utf8_env_file_exits_2() -> None:
    with _workdir() as tmp:
        (tmp / ".env").write_bytes(b"CP_LOG_LEVEL=\xff\n")
        result = invoke(["settings", "show"])
    assert result.code == 2 and result.stderr.startswith("error: .env: not UTF-8 text")
    assert_clean(result)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff", "not UTF-8 text"),
        (b"[" * 100_000, "nested deeper than 64 levels"),
        (b'{"format": 1, "state": {"org": ' + b"7" * 5000 + b"}}", "holds a number longer than 40 digits"),
        (b'{"format": 99}', "not an emulator snapshot of format 1"),
        (b'{"format": 1, "state": {"machines": 3}}', "the snapshot does not validate at"),
    ],
)
def test_a_hostile_emulator_snapshot_is_refused_in_one_line(content: bytes, reason: str) -> None:
    with _workdir() as tmp:
        (tmp / "snap.json").write_bytes(content)
        result = invoke(["fly-emulator", "--port", "0", "--snapshot", "snap.json"])
    assert result.code == 2, result.output
    assert f"error: --snapshot: snap.json: {reason}" in result.stderr
    assert_clean(result)


def test_endless_catalogs_and_env_files_are_refused_after_the_limit() -> None:
    result = invoke(["agent-config", "plans", "--catalog", "/dev/zero"])
    assert result.code == 2 and "error: /dev/zero: larger than the limit" in result.stderr
    with _workdir() as tmp:
        (tmp / ".env").symlink_to("/dev/zero")
        env_result = invoke(["settings", "show"])
    assert env_result.code == 2 and "error: .env: larger than the limit" in env_result.stderr
    assert_clean(result)
    assert_clean(env_result)


def test_a_database_port_out_of_range_is_refused() -> None:
    result = invoke(
        ["settings", "show"], env={"CP_DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:99999/x"}
    )
    assert result.code == 2 and "CP_DATABASE_URL: the port must be a number from 1 to 65535" in result.stderr
    assert_clean(result, SECRET)


@pytest.mark.parametrize("revision", ["../../etc", "/etc/passwd", SECRET, PLAIN_SECRET + "!", "", "a b"])
def test_db_revision_that_is_not_a_revision_exits_2(revision: str) -> None:
    with _workdir() as tmp:
        result = invoke(
            ["db", "upgrade", "--revision", revision], env={"CP_DATABASE_URL": f"sqlite:///{tmp}/x.db"}
        )
        assert not (tmp / "x.db").exists()  # refused before Alembic opened anything
    assert result.code == 2 and result.stderr.startswith("error: --revision: not a revision")
    assert_clean(result, SECRET, PLAIN_SECRET)


def test_db_revision_unknown_to_the_project_exits_2() -> None:
    with _workdir() as tmp:
        result = invoke(
            ["db", "upgrade", "--revision", "9999"], env={"CP_DATABASE_URL": f"sqlite:///{tmp}/x.db"}
        )
    assert result.code == 2 and "error: --revision: no such revision" in result.stderr
    assert_clean(result)


def _pg(host_port_db: str) -> str:
    user = POSTGRES_URL.split("://", 1)[1].split("@", 1)[0]
    return f"postgresql://{user}:{SECRET}@{host_port_db}?password={SECRET}#{SECRET}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (_pg("127.0.0.1:1/test"), "connection refused"),
        (_pg("127.0.0.1:5432/no_such_database_here"), "the database does not exist"),
        (_pg("no-such-host.invalid:5432/test"), "host not found"),
    ],
)
def test_an_unreachable_database_exits_1_with_one_line(url: str, reason: str) -> None:
    result = invoke(["db", "upgrade"], env={"CP_DATABASE_URL": url})
    assert result.code == 1, result.output
    assert result.stderr.startswith("error: database postgresql+asyncpg://***@")
    assert f"?password=***: {reason}" in result.stderr  # SQLAlchemy reads the fragment into the query
    assert_clean(result, SECRET)


def test_a_database_without_the_schema_says_to_upgrade() -> None:
    with _workdir() as tmp:
        result = invoke(["tenant", "show", "t1"], env={"CP_DATABASE_URL": f"sqlite:///{tmp}/empty.db"})
    assert result.code == 1 and "run `controlplane db upgrade`" in result.stderr
    assert_clean(result)


def test_secrets_in_urls_are_masked_by_settings_show() -> None:
    env = {
        "CP_DATABASE_URL": f"postgresql://u:{SECRET}@db.example:5432/x?password={PLAIN_SECRET}&sslmode=require#{SECRET}",
        "CP_FLY_API_URL": f"https://{PLAIN_SECRET}@api.machines.dev/?key={PLAIN_SECRET}#{PLAIN_SECRET}",
        "CP_OPENAI_BASE_URL": f"https://proxy.example/v1?api-key={PLAIN_SECRET}",
        "COLUMNS": "300",
    }
    result = invoke(["settings", "show"], env=env)
    assert result.code == 0, result.output
    assert "postgresql+asyncpg://***@db.example:5432/x?password=***&sslmode=***" in result.stdout, (
        result.stdout
    )
    assert "https://***@api.machines.dev/?key=***#***" in result.stdout
    assert "https://proxy.example/v1?api-key=***" in result.stdout
    assert_clean(result, SECRET, PLAIN_SECRET)


def test_an_unexpected_failure_is_one_redacted_line_and_a_0600_debug_log(
    monkeypatch: pytest.MonkeyPatch, _debug_log: Path
) -> None:
    from controlplane.cli import settings_cmd

    def broken() -> None:
        raise RuntimeError(f"boom with {SECRET}\nsecond line")

    monkeypatch.setattr(settings_cmd, "get_settings", broken, raising=False)
    monkeypatch.setattr("controlplane.cli._common.get_settings", broken)
    result = invoke(["settings", "show"])
    assert result.code == 1
    assert (
        result.stderr.strip()
        == f"error: unexpected RuntimeError: boom with [REDACTED]; details in {_debug_log}"
    )
    assert_clean(result, SECRET)
    logged = _debug_log.read_text()
    assert "Traceback" in logged and "RuntimeError" in logged and SECRET not in logged
    assert stat.S_IMODE(_debug_log.stat().st_mode) == 0o600
    assert stat.S_IMODE(_debug_log.parent.stat().st_mode) == 0o700


def test_usage_errors_never_echo_a_pasted_value() -> None:
    for args in (["serve", "--port", PLAIN_SECRET], [PLAIN_SECRET], ["tenant", "show", "t1", PLAIN_SECRET]):
        result = invoke(args)
        assert result.code == 2, result.output
        assert_clean(result, PLAIN_SECRET)


# --- properties ----------------------------------------------------------------------------------

_secretish = st.sampled_from([SECRET, PLAIN_SECRET, "xai-" + "k9" * 12, "ghp_" + "Ab1" * 12])


@FAST
@given(content=st.binary(max_size=400) | st.text(max_size=200).map(str.encode), secret=_secretish)
def test_any_spec_file_gives_a_documented_exit_and_no_secret(content: bytes, secret: str) -> None:
    with _workdir() as tmp:
        (tmp / "spec.json").write_bytes(content.replace(b"KEY", secret.encode()))
        result = invoke(["agent-config", "render", "--spec", "spec.json"])
    assert result.code in (0, 2, 3)
    assert_clean(result, secret)


@FAST
@given(content=st.binary(max_size=300) | st.text(max_size=200).map(str.encode), secret=_secretish)
def test_any_catalog_gives_a_documented_exit_and_no_secret(content: bytes, secret: str) -> None:
    with _workdir() as tmp:
        (tmp / "plans.toml").write_bytes(f'{secret} = "x"\n'.encode() + content)
        result = invoke(["agent-config", "plans", "--catalog", "plans.toml"])
    assert result.code == 2
    assert_clean(result, secret)


@FAST
@given(
    provider=st.text(min_size=1, max_size=60).filter(lambda p: p.strip() not in PROVIDER_IDS),
    stdin=st.text(max_size=80),
)
def test_byok_check_with_any_unknown_provider_exits_2(provider: str, stdin: str) -> None:
    result = invoke(["byok", "check", "--provider", provider], stdin=stdin)
    assert result.code == 2, result.output
    assert_clean(result)
    if len(provider) >= 8 and not provider.islower():
        assert provider not in result.output


@FAST
@given(revision=st.text(max_size=40), secret=_secretish)
def test_db_upgrade_with_any_revision_text_is_refused_or_known(revision: str, secret: str) -> None:
    with _workdir() as tmp:
        given_revision = f"{revision}/{secret}"  # never a revision: refused before Alembic runs
        result = invoke(
            ["db", "upgrade", "--revision", given_revision], env={"CP_DATABASE_URL": f"sqlite:///{tmp}/x.db"}
        )
    assert result.code == 2 and result.stderr.startswith("error: --revision:")
    assert_clean(result, secret)


_SETTING_NAMES = (
    "CP_PLAN_CATALOG",
    "CP_DATABASE_URL",
    "CP_FLY_API_URL",
    "CP_OPENAI_BASE_URL",
    "CP_LOG_LEVEL",
    "CP_API_MAX_BODY_BYTES",
    "CP_VAULT_KEYS",
    "CP_PLATFORM_KEYS",
    "CP_API_TOKENS",
    "CP_FLY_FALLBACK_REGIONS",
)


@FAST
@given(
    name=st.sampled_from(_SETTING_NAMES),
    shape=st.sampled_from(
        [
            "{s}",
            "postgresql://u:{s}@h:{n}/db?password={s}#{s}",
            "https://{s}@h.example/?key={s}",
            "sqlite:///x.db?{s}",
            "k1:{s}",
            "openai={s}",
            "{s},{s}",
        ]
    ),
    secret=_secretish,
    number=st.integers(min_value=-5, max_value=200_000),
)
def test_settings_show_with_any_setting_value_never_shows_a_secret(
    name: str, shape: str, secret: str, number: int
) -> None:
    value = shape.format(s=secret, n=number)
    with _workdir():
        result = invoke(["settings", "show"], env={name: value, "COLUMNS": "300"})
    assert result.code in (0, 2), result.output
    assert_clean(result, secret)


@FAST
@given(content=st.binary(max_size=200), secret=_secretish)
def test_any_env_file_gives_exit_0_or_2_and_no_secret(content: bytes, secret: str) -> None:
    with _workdir() as tmp:
        (tmp / ".env").write_bytes(b"CP_FLY_API_TOKEN=" + secret.encode() + b"\n" + content)
        result = invoke(["settings", "show"], env={"COLUMNS": "300"})
    assert result.code in (0, 2), result.output
    assert_clean(result, secret)


# --- the boundary's table ------------------------------------------------------------------------


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


def _table() -> list[tuple[BaseException, int, str]]:
    import socket

    from agents_config.catalog import CatalogError
    from controlplane.errors import BadInput, NotFound, Refused, Unavailable
    from controlplane.fly import FlyConfigError
    from controlplane.limits import InputRefused
    from controlplane.settings import SettingsError

    return [
        (BadInput("--plan", "no"), 2, "--plan: no"),
        (NotFound("EXTERNAL_ID", "no tenant with this id"), 2, "EXTERNAL_ID: no tenant"),
        (Unavailable("Fly API", "503"), 1, "Fly API: 503"),
        (Refused("--confirm", "say yes"), 3, "--confirm: say yes"),
        (SettingsError("CP_X: bad"), 2, "CP_X: bad"),
        (InputRefused("spec.json", "not UTF-8 text"), 2, "spec.json: not UTF-8 text"),
        (CatalogError("plans.toml: plan 'x': bad"), 2, "plans.toml"),
        (FlyConfigError("CP_FLY_API_TOKEN is not set"), 2, "CP_FLY_API_TOKEN"),
        (_chained(RuntimeError("wrapped"), ConnectionRefusedError(111, "refused")), 1, "connection refused"),
        (
            _chained(RuntimeError("wrapped"), socket.gaierror(-2, "Name or service not known")),
            1,
            "host not found",
        ),
        (TimeoutError(), 1, "timed out"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ExceptionGroup("tasks", [BadInput("--x", "no"), BadInput("--y", "no")]), 2, "--x: no"),
        (RuntimeError(f"oops {SECRET}"), 1, "unexpected RuntimeError"),
    ]


def test_each_failure_class_has_its_exit_code_and_one_line() -> None:
    for exc, code, line in _table():
        failure = boundary.classify(exc)
        assert failure.exit_code == code, exc
        assert line in failure.line, (exc, failure.line)
        assert failure.unexpected == (type(exc) is RuntimeError and "wrapped" not in str(exc))
        assert failure.line.count("\n") == 0
        assert "\n" not in boundary.one_line(failure.line) and SECRET not in boundary.one_line(failure.line)


def test_scrub_replaces_non_plain_command_line_values_only() -> None:
    line = f"Invalid value for '--port': '{PLAIN_SECRET}' is not valid; No such command 'tenantz'; 8080"
    scrubbed = boundary.scrub(line, ["serve", "--port", PLAIN_SECRET, "tenantz", "8080", f"--x={SECRET}"])
    assert PLAIN_SECRET not in scrubbed and "<a 32-character value starting 'Zr'>" in scrubbed
    assert "'tenantz'" in scrubbed and "8080" in scrubbed and "'--port'" in scrubbed


# --- tenant commands against a real (SQLite) database ---------------------------------------------


@pytest.fixture
def migrated_url(fresh_database_url: str) -> str:
    """A migrated database of each backend (one per test; hypothesis's examples share it)."""
    from controlplane.db import migrate
    from controlplane.db.urls import normalise_database_url

    migrate.upgrade(normalise_database_url(fresh_database_url))
    return fresh_database_url


_word = st.text(max_size=30) | _secretish | st.sampled_from(["pro", "starter", "iad", "t1", "acme-2"])


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(
        ["create", "set-plan", "show", "stop", "start", "delete", "set-key", "reconcile"]
    ),
    external_id=_word,
    value=_word,
    reason=_word,
)
def test_tenant_commands_with_any_input(
    migrated_url: str, command: str, external_id: str, value: str, reason: str
) -> None:
    args = {
        "create": ["tenant", "create", external_id, "--plan", value, "--region", "iad", "--reason", reason],
        "set-plan": ["tenant", "set-plan", external_id, value, "--reason", reason],
        "show": ["tenant", "show", external_id, "--json"],
        "stop": ["tenant", "stop", external_id, "--reason", reason],
        "start": ["tenant", "start", external_id, "--reason", reason],
        "delete": ["tenant", "delete", external_id, "--reason", reason],
        "set-key": ["tenant", "set-key", external_id, "--provider", f"x{value}"],  # never a known provider
        "reconcile": ["reconcile", external_id, "--reason", reason],  # a workers command, same boundary
    }[command]
    env = {"CP_DATABASE_URL": migrated_url, "CP_VAULT_KEYS": TEST_VAULT_KEYS}
    with _workdir():
        result = invoke(args, stdin=SECRET, env=env)
    assert result.code in (0, 1, 2, 3) if command == "reconcile" else result.code in (0, 2, 3), result.output
    assert_clean(result, SECRET, PLAIN_SECRET)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    content=st.binary(max_size=200) | st.text(max_size=120).map(str.encode),
    suffix=st.sampled_from([".toml", ".json"]),
    secret=_secretish,
)
def test_plans_migrate_dry_run_with_any_map_file(
    migrated_url: str, content: bytes, suffix: str, secret: str
) -> None:
    with _workdir() as tmp:
        (tmp / f"map{suffix}").write_bytes(content.replace(b"K", secret.encode()))
        result = invoke(
            ["plans", "migrate", "--map", f"map{suffix}", "--dry-run"],
            env={"CP_DATABASE_URL": migrated_url, "CP_VAULT_KEYS": TEST_VAULT_KEYS},
        )
    assert result.code in (0, 2), result.output
    assert_clean(result, secret)


# --- every command, every typed option -----------------------------------------------------------


def _commands() -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Each command's words and its options that take a typed (non-text) value: (flag, type name)."""
    import typer.main

    found: list[tuple[list[str], list[tuple[str, str]]]] = []

    def walk(command: object, words: list[str]) -> None:
        sub = getattr(command, "commands", None)
        if sub:
            for name, child in sorted(sub.items()):
                walk(child, [*words, name])
            return
        typed = []
        for param in getattr(command, "params", []):
            flags = [o for o in getattr(param, "opts", []) if o.startswith("--")]
            kind = param.bare_type() if hasattr(param, "bare_type") else None
            if flags and not getattr(param, "is_flag", False) and str(kind) in ("int", "float"):
                typed.append((flags[0], str(kind)))
        found.append((words, typed))

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()


def test_the_sweep_sees_every_command() -> None:
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"worker", "reconcile", "demo", "serve", "db upgrade", "keys rotate", "fly-emulator"} <= names
    assert ("--port", "int") in dict((" ".join(w), t) for w, t in COMMANDS)["serve"]


@pytest.mark.parametrize(("words", "typed"), COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_every_command_refuses_pasted_values_in_one_line(
    words: list[str], typed: list[tuple[str, str]]
) -> None:
    attempts = [[*words, "--no-such-option", PLAIN_SECRET], [*words, f"--{PLAIN_SECRET}"]]
    attempts += [[*words, flag, PLAIN_SECRET] for flag, _ in typed]
    attempts += [[*words, f"{flag}={SECRET}"] for flag, _ in typed]
    for args in attempts:
        result = invoke(args)
        assert result.code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and "try 'controlplane" in result.stderr
        assert_clean(result, SECRET, PLAIN_SECRET)


def test_the_console_entry_point_runs_behind_the_boundary(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {
        **os.environ,
        "CP_DEBUG_LOG": str(tmp_path / "debug.log"),
        "CP_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    env.pop("CP_PLAN_CATALOG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "controlplane", "agent-config", "render", "--spec", "/dev/zero"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: /dev/zero: larger than the limit of 1,048,576 bytes\n" and proc.stdout == ""


def test_good_input_still_works_behind_the_boundary(migrated_url: str) -> None:
    env = {"CP_DATABASE_URL": migrated_url, "CP_VAULT_KEYS": TEST_VAULT_KEYS}
    created = invoke(
        ["tenant", "create", "acme-2", "--plan", "pro", "--reason", f"asked by {SECRET}"], env=env
    )
    assert created.code == 0, created.output
    again = invoke(["tenant", "create", "acme-2", "--plan", "pro"], env=env)
    assert again.code == 3 and again.stderr.startswith(
        "error: EXTERNAL_ID: a tenant with this id exists already"
    )
    shown = invoke(["tenant", "show", "acme-2", "--json"], env=env)
    assert shown.code == 0 and '"acme-2"' in shown.stdout
    assert_clean(shown, SECRET)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.text(min_size=1, max_size=60).filter(lambda p: not p.startswith("-")), secret=_secretish)
def test_any_path_given_for_a_file_option(path: str, secret: str) -> None:
    with _workdir():
        for args in (
            ["agent-config", "render", "--spec", path + secret],
            ["agent-config", "plans", "--catalog", path + secret],
            ["plans", "migrate", "--map", path + secret, "--dry-run"],
            ["plans", "migrate", "--map", f"{path}/{secret}.toml", "--dry-run"],  # named by its file name
        ):
            result = invoke(args)
            assert result.code == 2, (args, result.output)
            assert_clean(result, secret)


def test_the_debug_log_is_never_written_through_a_symlink_and_an_old_one_is_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("")
    link = tmp_path / "debug.log"
    link.symlink_to(target)
    monkeypatch.setenv("CP_DEBUG_LOG", str(link))
    assert boundary.write_debug_log(RuntimeError("x")) is None
    assert target.read_text() == ""
    link.unlink()
    link.write_text("old\n")
    link.chmod(0o644)
    assert boundary.write_debug_log(RuntimeError("y")) == link
    assert stat.S_IMODE(link.stat().st_mode) == 0o600 and "RuntimeError: y" in link.read_text()
