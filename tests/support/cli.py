"""Run the ``controlplane`` CLI as operators do: a subprocess (``python -m controlplane``), its own
environment (no CP_* variable of the developer), exit code, standard output and standard error."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.db import TEST_VAULT_KEYS


def cli_env(url: str, **env: str) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
    full_env.update(
        {"CP_DATABASE_URL": url, "CP_VAULT_KEYS": TEST_VAULT_KEYS, "CP_LOG_FORMAT": "json", **env}
    )
    return full_env


async def cli(url: str, *args: str, stdin: str | None = None, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlplane",
        *args,
        env=cli_env(url, **env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_error_line(err: str, field: str) -> bool:
    """The CLI's refusal: one line on standard error naming ``field``, no traceback."""
    lines = [line for line in err.strip().splitlines() if line]
    return len(lines) == 1 and field in lines[0] and "Traceback" not in err


__all__ = ["cli", "cli_env", "one_error_line"]
