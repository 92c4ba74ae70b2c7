"""Fly Machines API emulator: Fly's endpoints, states, latencies, leases, secrets versions, rate
limits, 408 waits, ambiguous creates and injectable faults, in memory, for tests, demo and drills.

    from controlplane.fly.emulator import FlyEmulator, EmulatorOptions, FaultSpec
    emu = FlyEmulator(EmulatorOptions(latency="zero", faults=FaultSpec.parse("5xx=0.1"), seed=1,
                                      org="test-org", token="test-token", rate_limits=True))
    async with httpx.AsyncClient(transport=emu.transport(), base_url="http://fly") as http: ...
    async with emu.serve() as base_url: ...   # real loopback HTTP
"""

from controlplane.fly.emulator.emulator import FlyEmulator, running
from controlplane.fly.emulator.faults import FaultSpec, Injection
from controlplane.fly.emulator.options import EmulatorOptions, LatencyProfile

__all__ = ["EmulatorOptions", "FaultSpec", "FlyEmulator", "Injection", "LatencyProfile", "running"]
