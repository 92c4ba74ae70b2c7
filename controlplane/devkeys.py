"""A development vault key ring for the embedded default (``make demo`` on a fresh checkout).

Production sets ``CP_VAULT_KEYS`` itself; when it is unset, the demo writes a generated ring to
``.env`` so the database it creates can be decrypted on the next run. The file is created 0600 (never
created readable and narrowed afterwards), and an existing ``.env`` that other users can read or
write is refused before anything reads it (``Refused``, exit 3).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from controlplane.db.models import utcnow
from controlplane.private_files import append_private, check_private
from controlplane.settings import Settings, load_settings, reset_settings_cache
from controlplane.vault import format_key_ring_entry, generate_key


def ensure_vault_keys(console: Console, env_file: Path = Path(".env")) -> Settings:
    """Settings with a vault key ring: if none is configured, write a development ring to .env."""
    check_private(env_file, "the .env file")
    settings = load_settings()
    if settings.vault_keys is not None:
        return settings
    entry = format_key_ring_entry("dev1", generate_key())
    append_private(
        env_file,
        f"\n# Development vault key ring written by `controlplane demo` on {utcnow():%Y-%m-%d}."
        "\n# Keep it with controlplane.db (secrets cannot be decrypted without it).\n"
        f"CP_VAULT_KEYS={entry}\n",
    )
    console.print(
        f"[yellow]No CP_VAULT_KEYS set: wrote a development key ring to {env_file} "
        "(do not use it in production).[/]"
    )
    reset_settings_cache()
    return load_settings()


__all__ = ["ensure_vault_keys"]
