"""``controlplane fly-emulator``: the token from FLY_EMULATOR_TOKEN or a private file (never argv), a
bind beyond loopback only with a token, and deploy files that give it one."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from controlplane.cli import app

ROOT = Path(__file__).resolve().parents[4]
SECRET = "emulator-" + "t0ken" * 6


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Instead of serving: record what the command would have served."""
    calls: list[dict[str, Any]] = []

    def fake_run_forever(emulator_app: Any, host: str, port: int) -> None:
        calls.append({"token": emulator_app.world.options.token, "host": host, "port": port})

    monkeypatch.setattr("controlplane.fly.emulator.server.run_forever", fake_run_forever)
    monkeypatch.delenv("FLY_EMULATOR_TOKEN", raising=False)
    return calls


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, ["fly-emulator", *args], env=env)


def test_the_token_option_is_gone_from_the_command_line(served: list[dict[str, Any]]) -> None:
    result = _run("--token", SECRET)
    assert result.exit_code == 2 and served == []
    assert SECRET not in result.output


def test_the_token_comes_from_the_environment(served: list[dict[str, Any]]) -> None:
    result = _run("--port", "0", env={"FLY_EMULATOR_TOKEN": SECRET})
    assert result.exit_code == 0, result.output
    assert served == [{"token": SECRET, "host": "127.0.0.1", "port": 0}]
    assert SECRET not in result.output


def test_the_token_comes_from_a_private_file(served: list[dict[str, Any]], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    result = _run("--host", "0.0.0.0", "--token-file", str(token_file))
    assert result.exit_code == 0, result.output
    assert served == [{"token": SECRET, "host": "0.0.0.0", "port": 4280}]


@pytest.mark.parametrize(
    ("content", "mode", "code"),
    [
        (SECRET, 0o644, 3),  # others can read it
        (SECRET, 0o660, 3),
        ("", 0o600, 2),
        ("two words", 0o600, 2),
        ("\xff\xfe", 0o600, 2),
        ("x" * 5000, 0o600, 2),
    ],
)
def test_a_token_file_others_can_read_or_without_a_token_is_refused(
    served: list[dict[str, Any]], tmp_path: Path, content: str, mode: int, code: int
) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(content.encode("latin-1"))
    token_file.chmod(mode)
    result = _run("--token-file", str(token_file))
    assert result.exit_code == code, result.output
    assert served == [] and "Traceback" not in result.output
    assert SECRET not in result.output


def test_token_in_both_places_is_refused(served: list[dict[str, Any]], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(0o600)
    result = _run("--token-file", str(token_file), env={"FLY_EMULATOR_TOKEN": SECRET})
    assert result.exit_code == 2 and served == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_without_a_token_it_binds_loopback_only(served: list[dict[str, Any]], host: str) -> None:
    result = _run("--host", host)
    assert result.exit_code == 2 and served == []
    assert "FLY_EMULATOR_TOKEN" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_without_a_token_still_serves(served: list[dict[str, Any]], host: str) -> None:
    assert _run("--host", host).exit_code == 0
    assert served == [{"token": None, "host": host, "port": 4280}]


def test_the_deploy_files_give_the_emulator_a_token_and_never_on_the_command_line() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    service = compose["services"]["fly-emulator"]
    assert "FLY_EMULATOR_TOKEN" in service["environment"]
    # required, and the same value the workers present (CP_FLY_API_TOKEN)
    assert "${CP_FLY_API_TOKEN:?" in service["environment"]["FLY_EMULATOR_TOKEN"]
    assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])
    assert "--token" not in service["command"]
    procfile = (ROOT / "deploy" / "Procfile").read_text()
    (line,) = [x for x in procfile.splitlines() if x.startswith("emulator:")]
    assert "--token" not in shlex.split(line)
    assert (
        "FLY_EMULATOR_TOKEN" in procfile
        and "FLY_EMULATOR_TOKEN" in (ROOT / "deploy" / "fly.toml").read_text()
    )


def test_the_procfile_emulator_refuses_to_start_without_its_token(served: list[dict[str, Any]]) -> None:
    procfile = (ROOT / "deploy" / "Procfile").read_text()
    (line,) = [x for x in procfile.splitlines() if x.startswith("emulator:")]
    argv = shlex.split(line.partition(":")[2])
    assert argv[:2] == ["controlplane", "fly-emulator"]
    assert _run(*argv[2:]).exit_code == 2 and served == []
    assert _run(*argv[2:], env={"FLY_EMULATOR_TOKEN": SECRET}).exit_code == 0
    assert served[0]["token"] == SECRET and served[0]["host"] == "0.0.0.0"


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8",
        b"[" * 100_000,
        b'{"format": 1, "state": {"org": "test-org", "machines": {"m": ' + SECRET.encode() + b"}}}",
        b'{"format": 1, "state": {"org": "test-org", "apps": "' + SECRET.encode() + b'"}}',
        b'{"format": 99}',
        b"[]",
        b'{"format": 1, "state": {"org": "test-org", "saved_mono": ' + b"9" * 5000 + b"}}",
    ],
)
def test_a_bad_snapshot_is_one_line_and_exit_2(
    served: list[dict[str, Any]], tmp_path: Path, content: bytes
) -> None:
    snapshot = tmp_path / "snap.json"
    snapshot.write_bytes(content)
    result = _run("--snapshot", str(snapshot))
    assert result.exit_code == 2, result.output
    assert served == [] and "Traceback" not in result.output and SECRET not in result.output
    assert "--snapshot" in result.output
