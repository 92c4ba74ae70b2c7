"""Fault injection: a seeded probabilistic spec plus programmatic one-shot/permanent injections.

Spec grammar (comma separated, every part optional)::

    5xx=P            answer 500/502/503 (seeded choice) instead of running the call
    500=P 502=P 503=P  a specific 5xx
    429=P            answer 429 (rate limited) instead of running the call
    drop=P           drop the connection before the call runs (no effect)
    ambiguous_create=P   machine create RUNS, then the answer is a 408, a 5xx or a dropped connection
    ambiguous=P      the same for EVERY mutating call (create, update, start, stop, suspend, restart,
                     destroy, cordon, lease acquire/refresh/release, metadata and secrets writes,
                     app create/delete): the call runs, the answer is lost
    latency=P:DUR    add DUR (e.g. 200ms, 1.5s) before answering, with probability P

P is a probability in [0, 1]. ``none`` or an empty string means no faults. Probabilistic faults only
touch the Machines API (/v1), never the gateway probes, and pre-call faults never change state.
Ambiguous decisions for mutating calls come from their own seeded stream, drawn only on mutating
calls, so they depend only on the sequence of mutations (not on how many GETs/waits ran between).

Injectable kinds (``FlyEmulator.inject``) also include ``404`` (a spurious not-found, e.g. lag).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.fly.emulator.errors import error_body

PRE_KINDS = frozenset(
    {
        "500",
        "502",
        "503",
        "5xx",
        "429",
        "408",
        "404",
        "drop",
        "capacity",
        "org_quota",
        "host_disabled",
        "volume_host_full",
    }
)
POST_KINDS = frozenset(
    {
        "ambiguous",
        "ambiguous_408",
        "ambiguous_5xx",
        "ambiguous_500",
        "ambiguous_502",
        "ambiguous_503",
        "ambiguous_drop",
    }
)
DELAY_KINDS = frozenset({"latency"})
ALL_KINDS = PRE_KINDS | POST_KINDS | DELAY_KINDS

#: Operations that change state: ``ambiguous=P`` applies to these.
MUTATING_OPS = frozenset(
    {
        "create_app",
        "delete_app",
        "set_secrets",
        "set_secret",
        "delete_secret",
        "create_machine",
        "update_machine",
        "destroy_machine",
        "start_machine",
        "stop_machine",
        "suspend_machine",
        "restart_machine",
        "cordon_machine",
        "uncordon_machine",
        "acquire_lease",
        "release_lease",
        "update_metadata",
        "set_metadata_key",
        "delete_metadata_key",
        "create_volume",
        "delete_volume",
        "extend_volume",
    }
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_duration(text: str) -> float:
    """'200ms' -> 0.2, '1.5s' -> 1.5, '2' -> 2.0 (seconds)."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"bad duration {text!r} (use e.g. 200ms or 1.5s)")
    value = float(found.group(1))
    return value / 1000.0 if found.group(2) == "ms" else value


def _probability(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ValueError(f"fault {key}: probability {text!r} is not a number") from exc
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault {key}: probability {value} outside [0, 1]")
    return value


@dataclass(frozen=True)
class FaultSpec:
    """Probabilities of each random fault. Build with ``FaultSpec.parse("5xx=0.1,429=0.05")``."""

    p_5xx: float = 0.0
    p_500: float = 0.0
    p_502: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    p_drop: float = 0.0
    p_ambiguous_create: float = 0.0
    p_ambiguous: float = 0.0
    p_latency: float = 0.0
    latency: float = 0.0  # seconds added when the latency fault fires

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        if text is None or not text.strip() or text.strip().lower() == "none":
            return cls()
        values: dict[str, float] = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"fault {part!r}: expected key=value")
            if key == "latency":
                prob, colon, dur = raw.partition(":")
                values["p_latency"] = _probability(key, prob)
                if not colon:
                    raise ValueError("latency fault needs P:DURATION, e.g. latency=0.1:200ms")
                values["latency"] = parse_duration(dur)
            elif key in ("5xx", "500", "502", "503", "429", "drop", "ambiguous_create", "ambiguous"):
                values[f"p_{key}"] = _probability(key, raw)
            else:
                raise ValueError(f"unknown fault {key!r}")
        return cls(**values)

    def __str__(self) -> str:
        parts = []
        for key in ("5xx", "500", "502", "503", "429", "drop", "ambiguous_create", "ambiguous"):
            value = getattr(self, f"p_{key}")
            if value:
                parts.append(f"{key}={value:g}")
        if self.p_latency:
            parts.append(f"latency={self.p_latency:g}:{int(self.latency * 1000)}ms")
        return ",".join(parts) or "none"

    @property
    def empty(self) -> bool:
        return str(self) == "none"


@dataclass
class RequestInfo:
    """What the fault layer knows about a call before it runs."""

    op: str
    method: str
    path: str
    app: str | None = None
    region: str | None = None


@dataclass
class Injection:
    """A programmatic fault. ``times=None`` makes it permanent until cleared."""

    kind: str
    op: str | None = None
    path: re.Pattern[str] | None = None
    method: str | None = None
    app: str | None = None
    region: str | None = None
    times: int | None = 1
    delay: float = 0.0
    hits: int = 0

    def matches(self, info: RequestInfo) -> bool:
        if self.op is not None and self.op != info.op:
            return False
        if self.path is not None and not self.path.search(info.path):
            return False
        if self.method is not None and self.method.upper() != info.method.upper():
            return False
        if self.app is not None and self.app != info.app:
            return False
        return self.region is None or self.region == info.region

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass
class FaultDecision:
    pre: str | None = None  # answer this fault instead of running the call
    post: str | None = None  # run the call, then answer this fault
    delay: float = 0.0
    source: Literal["none", "random", "injected"] = "none"
    extra: dict[str, Any] = field(default_factory=dict)


class FaultInjector:
    """Decides, per API call, whether a fault fires. Seeded: same seed + same calls = same faults."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(f"faults:{seed}")
        self._mutation_rng = random.Random(f"faults-mutations:{seed}")
        self._injections: list[Injection] = []
        self.fired: list[tuple[str, str]] = []  # (op, kind) history, for tests and drills

    def inject(self, injection: Injection) -> Injection:
        if injection.kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {injection.kind!r}; known: {sorted(ALL_KINDS)}")
        self._injections.append(injection)
        return injection

    def clear(self) -> None:
        self._injections.clear()

    def decide(self, info: RequestInfo) -> FaultDecision:
        for injection in self._injections:
            if injection.exhausted or not injection.matches(info):
                continue
            injection.hits += 1
            self.fired.append((info.op, injection.kind))
            if injection.kind in DELAY_KINDS:
                return FaultDecision(delay=injection.delay, source="injected")
            if injection.kind in POST_KINDS:
                return FaultDecision(post=self._ambiguous_variant(injection.kind), source="injected")
            return FaultDecision(pre=injection.kind, source="injected")
        return self._random(info)

    def _random(self, info: RequestInfo) -> FaultDecision:
        spec = self.spec
        if spec.empty:
            return FaultDecision()
        # Always draw the same number of values so the sequence depends only on the call sequence.
        r_latency, r_pre, r_ambiguous, r_variant = (self._rng.random() for _ in range(4))
        decision = FaultDecision()
        if r_latency < spec.p_latency:
            decision.delay = spec.latency
            decision.source = "random"
        threshold = 0.0
        for kind, prob in (
            ("5xx", spec.p_5xx),
            ("500", spec.p_500),
            ("502", spec.p_502),
            ("503", spec.p_503),
            ("429", spec.p_429),
            ("drop", spec.p_drop),
        ):
            threshold += prob
            if r_pre < threshold:
                decision.pre = ("500", "502", "503")[int(r_variant * 3)] if kind == "5xx" else kind
                decision.source = "random"
                self.fired.append((info.op, decision.pre))
                return decision
        if info.op == "create_machine" and r_ambiguous < spec.p_ambiguous_create:
            decision.post = ("ambiguous_408", "ambiguous_503", "ambiguous_drop")[int(r_variant * 3)]
            decision.source = "random"
            self.fired.append((info.op, decision.post))
        elif spec.p_ambiguous and info.op in MUTATING_OPS:
            m_ambiguous, m_variant = self._mutation_rng.random(), self._mutation_rng.random()
            if m_ambiguous < spec.p_ambiguous:
                decision.post = ("ambiguous_408", "ambiguous_503", "ambiguous_drop")[int(m_variant * 3)]
                decision.source = "random"
                self.fired.append((info.op, decision.post))
        return decision

    def _ambiguous_variant(self, kind: str) -> str:
        if kind == "ambiguous":
            return "ambiguous_408"
        if kind == "ambiguous_5xx":
            return "ambiguous_503"
        return kind


def fault_response(kind: str, info: RequestInfo, org: str) -> tuple[int, dict[str, Any]]:
    """HTTP status and Fly-like body for a fault kind (``drop`` is handled by the transport layer)."""
    region = info.region or "iad"
    kind = kind.removeprefix("ambiguous_")
    if kind in ("500", "5xx"):
        return 500, error_body("internal error: failed to process request, please try again", "unknown")
    if kind == "502":
        return 502, error_body("bad gateway: upstream connection reset", "unknown")
    if kind == "503":
        return 503, error_body(
            "service unavailable: the API is temporarily unavailable, please retry", "unknown"
        )
    if kind == "429":
        return 429, error_body("rate limit exceeded", "rate_limited")
    if kind == "404":
        what = "machine" if "/machines/" in info.path else "app" if info.app else "resource"
        return 404, error_body(f"{what} not found", "not_found")
    if kind == "408":
        return 408, error_body(
            "deadline_exceeded: request timed out waiting for the host agent, the operation may still complete",
            "deadline_exceeded",
        )
    if kind == "capacity":
        if info.op == "create_volume":
            return 400, error_body(
                f"insufficient resources: no capacity available in {region}", "insufficient_capacity"
            )
        if info.op in ("start_machine", "update_machine"):
            # The machine's HOST is full (not the region): no insufficient_capacity status here.
            return 409, error_body(
                "could not reserve resource for machine: insufficient memory available to fulfill request"
            )
        return 412, error_body(
            f"could not reserve resource for machine: insufficient resources available to fulfill request in {region}",
            "insufficient_capacity",
        )
    if kind == "org_quota":
        return 403, error_body(
            f"organization {org} is using 51200 MB of memory in {region} which is over the allowed quota of 51200 MB",
            "quota_exceeded",
        )
    if kind == "host_disabled":
        return 500, error_body(
            "failed to update VM: deploys to this host are temporarily disabled, please try again later",
            "unknown",
        )
    if kind == "volume_host_full":
        return 412, error_body(
            "insufficient resources to create new machine with existing volume", "volume_placement_capacity"
        )
    raise ValueError(f"fault kind {kind!r} has no HTTP answer")
