"""CLI commands for Fly: ``controlplane fly-emulator`` runs the Fly Machines API emulator on a port.

    controlplane fly-emulator --port 4280 --latency fast|zero|realistic --faults SPEC --seed N
                              [--token T | env FLY_EMULATOR_TOKEN] [--org O] [--snapshot FILE]

``--latency fast`` is the default: every transition takes a little emulated time, as on Fly.
``zero`` settles everything before the next request, which is kinder than Fly: only for benchmarks.
With ``--snapshot FILE`` the emulator loads FILE if it exists and writes it back on shutdown.
Point a client at ``http://127.0.0.1:PORT`` (the API lives under ``/v1``; gateway probes under
``/gateway/<app>/healthz`` or with ``Host: <app>.fly.dev``).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

LatencyName = Literal["zero", "fast", "realistic"]
LATENCIES = ("zero", "fast", "realistic")


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
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FLY_EMULATOR_TOKEN", help="Require this API token (Bearer or FlyV1).", show_default=False
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
        token=token or None,
        rate_limits=rate_limits,
        clock_speed=clock_speed,
    )
    if snapshot is not None and snapshot.exists():
        emulator = FlyEmulator.load(snapshot, options)
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
