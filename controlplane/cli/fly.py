"""CLI commands for Fly: ``controlplane fly-emulator`` runs the Fly Machines API emulator on a port.

    FLY_EMULATOR_TOKEN=... controlplane fly-emulator --port 4280 --latency fast|zero|realistic
                              --faults SPEC --seed N [--token-file FILE] [--org O] [--snapshot FILE]

The API token comes from the environment (``FLY_EMULATOR_TOKEN``) or a private file
(``--token-file``), never from the command line (where ``ps`` shows it to every user). Without a
token the emulator answers anyone, so it then binds loopback only: ``--host`` other than a loopback
address needs a token (exit 2 otherwise). The snapshot is written 0600.

``--latency fast`` is the default: every transition takes a little emulated time, as on Fly.
``zero`` settles everything before the next request, which is kinder than Fly: only for benchmarks.
With ``--snapshot FILE`` the emulator loads FILE if it exists and writes it back on shutdown.
Point a client at ``http://127.0.0.1:PORT`` (the API lives under ``/v1``; gateway probes under
``/gateway/<app>/healthz`` or with ``Host: <app>.fly.dev``).
"""

from __future__ import annotations

import ipaddress
import os
import signal
from pathlib import Path
from typing import Annotated, Literal, cast

import typer
from pydantic import ValidationError

from controlplane.errors import BadInput, ControlPlaneError
from controlplane.limits import InputRefused
from controlplane.private_files import check_private
from controlplane.redaction import redact_text

LatencyName = Literal["zero", "fast", "realistic"]
LATENCIES = ("zero", "fast", "realistic")
TOKEN_ENV = "FLY_EMULATOR_TOKEN"
MAX_TOKEN_FILE_BYTES = 4096


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def emulator_token(token_file: Path | None, from_env: str | None) -> str | None:
    """The token from a private file or the environment (never argv); None when neither is set."""
    if token_file is not None:
        if from_env:
            raise BadInput("--token-file", f"give the token either in {TOKEN_ENV} or in a file, not both")
        check_private(token_file, "--token-file")
        try:
            with token_file.open("rb") as fh:
                raw = fh.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as exc:
            raise BadInput("--token-file", f"cannot read {token_file}: {exc.strerror}") from None
        if len(raw) > MAX_TOKEN_FILE_BYTES:
            raise BadInput("--token-file", f"longer than {MAX_TOKEN_FILE_BYTES} bytes: not a token")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise BadInput("--token-file", "a token is printable ASCII") from None
        if not token or not token.isprintable() or any(c.isspace() for c in token):
            raise BadInput("--token-file", "holds no token (one line of printable ASCII without spaces)")
        return token
    return from_env.strip() if from_env and from_env.strip() else None


def fly_emulator(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port to listen on (0 = any free port).")
    ] = 4280,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    latency: Annotated[
        str,
        typer.Option(
            help="Latency profile: fast (default: small non-zero Fly races), realistic (Fly-like seconds), or zero "
            "(kinder than Fly: only for benchmarks)."
        ),
    ] = "fast",
    faults: Annotated[
        str, typer.Option(help="Fault spec, e.g. 5xx=0.1,429=0.05,ambiguous_create=0.05.")
    ] = "",
    seed: Annotated[int, typer.Option(help="Seed for faults and ids.")] = 0,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the API token (Bearer or FlyV1) from this file (mode 0600); or set FLY_EMULATOR_TOKEN.",
            show_default=False,
        ),
    ] = None,
    org: Annotated[str, typer.Option(help="The org slug the emulator serves.")] = "test-org",
    snapshot: Annotated[Path | None, typer.Option(help="Load from / save to this JSON snapshot.")] = None,
    rate_limits: Annotated[bool, typer.Option(help="Enforce Fly's rate limits (429).")] = True,
    clock_speed: Annotated[float, typer.Option(min=0.001, help="Emulated seconds per real second.")] = 1.0,
) -> None:
    """Run the Fly Machines API emulator (in memory) on a local port."""
    import structlog

    from controlplane.fly.emulator import EmulatorOptions, FaultSpec, FlyEmulator
    from controlplane.fly.emulator.server import run_forever
    from controlplane.logging import configure_logging

    configure_logging(level="INFO", fmt="auto")
    log = structlog.get_logger(__name__)
    try:
        token = emulator_token(token_file, os.environ.get(TOKEN_ENV))
    except ControlPlaneError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(exc.exit_code) from None
    if token is None and not is_loopback(host):
        typer.secho(
            f"error: --host: {host} is reachable from other machines; set {TOKEN_ENV} or --token-file "
            "(without a token the emulator binds loopback only)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2)
    if latency not in LATENCIES:
        typer.secho(f"error: --latency must be one of {', '.join(LATENCIES)}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    try:
        spec = FaultSpec.parse(faults)
    except ValueError as exc:
        typer.secho(f"error: --faults: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    options = EmulatorOptions(
        latency=cast(LatencyName, latency),
        faults=spec,
        seed=seed,
        org=org,
        token=token,
        rate_limits=rate_limits,
        clock_speed=clock_speed,
    )
    if snapshot is not None and snapshot.exists():
        try:
            emulator = FlyEmulator.load(snapshot, options)
        except InputRefused as exc:
            typer.secho(f"error: --snapshot: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        except ValueError as exc:  # pydantic's messages quote the values: only count them
            reason = (
                f"not a valid emulator snapshot ({len(exc.errors())} problem(s))"
                if isinstance(exc, ValidationError)
                else str(exc)[:200]
            )
            typer.secho(f"error: --snapshot {snapshot}: {redact_text(reason)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
    else:
        emulator = FlyEmulator(options)
    log.info(
        "fly_emulator.starting",
        host=host,
        port=port,
        latency=latency,
        faults=str(spec),
        seed=seed,
        org=org,
        auth=token is not None,
        rate_limits=rate_limits,
    )

    def _terminate(_signum: int, _frame: object) -> None:
        raise SystemExit(0)  # uvicorn re-raises SIGTERM after its graceful shutdown; exit cleanly

    signal.signal(signal.SIGTERM, _terminate)
    try:
        run_forever(emulator.app, host, port)
    finally:
        if snapshot is not None:
            emulator.snapshot_to(snapshot)


def register(app: typer.Typer) -> None:
    app.command("fly-emulator")(fly_emulator)
