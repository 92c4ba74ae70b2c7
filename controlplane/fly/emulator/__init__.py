"""Fly Machines API emulator: Fly's endpoints, states, latencies, leases, secrets versions, rate
limits, 408 waits, ambiguous mutations and injectable faults, in memory, for tests, demo and drills.

Principle: if the emulator is kinder than Fly, everything built on it is wrong. So by default
(``latency="fast"``) nothing is instant: a new machine or app answers 404 for a moment, an update
leaves the machine ``replacing`` (start → 412), ``checks`` are empty right after a start, a destroyed
machine is visible as ``destroyed`` before 404, secrets and list views lag behind writes, app deletes
cascade over time. ``latency="zero"`` hides all of that and is only for throughput benchmarks.

Each machine runs an emulated OpenClaw 2026.9.6 agent (``agent``): its probes and the status commands
exec'd in it (``exec``, ``openclaw_cli``) answer in shapes captured from the real gateway.

Deliberate deviations / choices where Fly is undocumented: no ``Retry-After`` on 429 unless
``retry_after=True``; ``current_version`` only enforced with ``enforce_current_version=True``; app
creates share one org bucket (1/s, burst 3); host-unreachable mutations answer 503; a create in a
deleting app answers 409; suspend/migrate/launch-failure rules as in ``machines``' docstring; exec
refusals (412 not started, 409 leased) as in ``exec``' docstring.

    from controlplane.fly.emulator import FlyEmulator, EmulatorOptions, FaultSpec
    emu = FlyEmulator(EmulatorOptions(faults=FaultSpec.parse("5xx=0.1,ambiguous=0.05"), seed=1,
                                      org="test-org", token="test-token", rate_limits=True))
    emu.advance(1.0)                       # finish transitions without sleeping
    emu.fail_credential(machine_id, "anthropic", "billing")   # the agent's own view, read through exec:
    emu.fail_channel(machine_id, "telegram")                  #   `openclaw models status --json` etc.
    emu.crash_loop(machine_id, every=10.0)                    # exit events until flyd gives up
    FlyClient(..., clock=emu.client_clock())  # client pacing/waits on the emulated clock
    async with httpx.AsyncClient(transport=emu.transport(), base_url="http://fly") as http: ...
    async with emu.serve() as base_url: ...   # real loopback HTTP
"""

from controlplane.fly.emulator.emulator import FlyEmulator, running
from controlplane.fly.emulator.faults import FaultSpec, Injection
from controlplane.fly.emulator.options import EmulatorOptions, LatencyProfile

__all__ = ["EmulatorOptions", "FaultSpec", "FlyEmulator", "Injection", "LatencyProfile", "running"]
