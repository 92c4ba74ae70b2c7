"""Identifier generation shaped like Fly's: hex machine ids, ULID-like versions, volume ids."""

from __future__ import annotations

import random

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ADJECTIVES = (
    "aged",
    "bold",
    "calm",
    "damp",
    "eager",
    "fancy",
    "gentle",
    "holy",
    "icy",
    "jolly",
    "kind",
    "lively",
    "misty",
    "noisy",
    "odd",
    "proud",
    "quiet",
    "rough",
    "shy",
    "tiny",
)
_NOUNS = (
    "sky",
    "moon",
    "river",
    "leaf",
    "stone",
    "cloud",
    "field",
    "forest",
    "lake",
    "wave",
    "star",
    "snow",
    "fire",
    "dust",
    "rain",
    "sea",
    "sun",
    "wind",
    "hill",
    "frost",
)


class IdFactory:
    """Deterministic for a given seed (ids are part of what a seeded run reproduces)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"ids:{seed}")

    def machine_id(self) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(14))

    def ulid(self, unix: float) -> str:
        millis = int(unix * 1000)
        head = ""
        for _ in range(10):
            head = _CROCKFORD[millis % 32] + head
            millis //= 32
        return head + "".join(self._rng.choice(_CROCKFORD) for _ in range(16))

    def volume_id(self) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "vol_" + "".join(self._rng.choice(alphabet) for _ in range(16))

    def nonce(self) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(32))

    def machine_name(self) -> str:
        return f"{self._rng.choice(_ADJECTIVES)}-{self._rng.choice(_NOUNS)}-{self._rng.randrange(1000, 9999)}"

    def private_ip(self) -> str:
        parts = [f"{self._rng.randrange(1, 0xFFFF):x}" for _ in range(3)]
        return f"fdaa:0:{parts[0]}:a7b:{parts[1]}:{parts[2]}:{self._rng.randrange(1, 0xFFFF):x}:2"

    def zone(self) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(4))

    def numeric(self) -> int:
        return self._rng.randrange(100_000, 9_999_999)

    def app_id(self) -> str:
        return "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
