"""A provider key held in memory behind a masked ``repr``/``str``.

The plaintext is reachable only through :meth:`ProviderKeyValue.reveal`, which is called at the few
points that need it: building the request headers, encrypting with the vault, fingerprinting and
redacting. Anything that formats the object (logs, exceptions, ``repr`` of a dataclass holding it)
sees ``ProviderKeyValue('**********')``.
"""

from __future__ import annotations

import hmac
from typing import NoReturn

_MASK = "**********"


class ProviderKeyValue:
    """A user's provider key. Surrounding whitespace (a pasted newline) is stripped."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a provider key must be a str")
        self._value = value.strip()

    def reveal(self) -> str:
        """The plaintext. Call only where the key must leave this wrapper."""
        return self._value

    @property
    def last4(self) -> str:
        """The last four characters, for display."""
        return self._value[-4:]

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"ProviderKeyValue('{_MASK}')"

    __str__ = __repr__

    def __format__(self, _spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProviderKeyValue):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # never a dict key or set member (hash leaks)

    def __reduce__(self) -> NoReturn:  # never pickled (e.g. into a job queue) by accident
        raise TypeError("ProviderKeyValue cannot be pickled")


__all__ = ["ProviderKeyValue"]
