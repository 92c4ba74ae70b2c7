"""``controlplane byok check --provider ID``: check a provider key read from standard input.

The key is read from stdin (a hidden prompt on a terminal), never from the command line (argv is
visible to every local user and lands in shell history). The verdict is printed as JSON on stdout:
provider, verdict, message, retry_after, format warnings, last4 — never the key. Exit 0 for any
verdict, 2 for bad input (unknown provider, empty key, refused format).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from controlplane.byok.catalog import get_spec
from controlplane.byok.errors import UnknownProvider
from controlplane.byok.formats import check_format
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.validate import KeyValidator
from controlplane.byok.verdicts import REFUSED, status_at_entry

byok_app = typer.Typer(help="Bring your own key: check provider API keys.", no_args_is_help=True)


def _bad_input(field: str, message: str) -> typer.Exit:
    from controlplane.cli.boundary import report

    report(f"{field}: {message}")
    return typer.Exit(2)


def _read_key() -> ProviderKeyValue:
    stdin = sys.stdin
    if stdin.isatty():
        return ProviderKeyValue(typer.prompt("API key", hide_input=True, default="", show_default=False))
    from controlplane.cli._common import read_stdin_bounded

    return ProviderKeyValue(read_stdin_bounded("key"))


@byok_app.command("check")
def check(
    provider: str = typer.Option(..., "--provider", help="Provider id, e.g. anthropic, openai, google."),
    paid_probe: bool = typer.Option(
        False,
        "--paid-probe",
        help="Also run the 1-token probe where one exists (costs the key's owner a fraction of a cent).",
    ),
) -> None:
    """Validate a key read from standard input and print the verdict as JSON."""
    from controlplane.cli._common import run, settings

    try:
        spec = get_spec(provider)
    except UnknownProvider as exc:
        raise _bad_input("--provider", str(exc)) from None
    key = _read_key()
    if not key:
        raise _bad_input("key (stdin)", "no key was given on standard input")
    shape = check_format(spec.id, key)
    if not shape.accepted:
        raise _bad_input("key (stdin)", shape.reason or "the key was refused")

    validator = KeyValidator.from_settings(settings(), paid_probes=paid_probe)
    verdict = run(validator.validate(spec.id, key))
    out: dict[str, Any] = {
        **verdict.to_dict(),
        "display_name": spec.display_name,
        "env_var": spec.env_var,
        "would_store": "refused" if verdict.verdict in REFUSED else status_at_entry(verdict.verdict).value,
        "format_warnings": list(shape.warnings),
        "last4": key.last4,
    }
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(byok_app, name="byok")
