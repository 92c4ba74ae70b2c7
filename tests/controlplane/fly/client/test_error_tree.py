"""The Fly error tree keeps its promises: a subclass never claims the opposite of what an
``except Parent:`` handler assumes, and the drawing in errors.py is the tree as it is."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from controlplane.fly import errors as E

FLAGS = ("ambiguous", "transient", "terminal")
DRAWN = {"Y": True, "n": False, ".": None}


def fly_error_classes() -> list[type[E.FlyError]]:
    """FlyError and every subclass the package defines (not ones a test may have made)."""
    found: list[type[E.FlyError]] = []
    todo: list[type[E.FlyError]] = [E.FlyError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("controlplane.fly") and cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def broken_promises(cls: type[E.FlyError]) -> list[str]:
    """What ``cls`` claims against its ancestors' promises, or against the flags' own rules."""
    problems = []
    for ancestor in cls.__mro__[1:]:
        if not (isinstance(ancestor, type) and issubclass(ancestor, E.FlyError)):
            continue
        for flag in FLAGS:
            promised, claimed = getattr(ancestor, flag), getattr(cls, flag)
            if promised is not None and claimed != promised:
                problems.append(f"{flag}={claimed} under {ancestor.__name__}.{flag}={promised}")
    if cls.transient and cls.terminal:
        problems.append("both transient and terminal")
    if cls.ambiguous and cls.terminal:
        problems.append("ambiguous but terminal (an ambiguous answer says nothing final)")
    return problems


@pytest.mark.parametrize("cls", fly_error_classes(), ids=lambda c: c.__name__)
def test_flags_keep_the_ancestors_promises(cls: type[E.FlyError]) -> None:
    assert broken_promises(cls) == []


@pytest.mark.parametrize(
    "cls", [c for c in fly_error_classes() if c is not E.FlyError], ids=lambda c: c.__name__
)
def test_every_class_says_whether_the_call_may_have_happened(cls: type[E.FlyError]) -> None:
    # Only the root leaves it open: a caller must always know whether to look before repeating.
    assert cls.ambiguous is not None


def test_the_checker_catches_a_subclass_breaking_a_promise() -> None:
    # Built outside the package's modules, so the tree walk above never sees them.
    retry_forever = type(
        "VolumeFullAsPrecondition", (E.FlyPrecondition,), {"transient": False, "terminal": True}
    )
    sure_of_a_timeout = type("DefiniteTimeout", (E.FlyTimeout,), {"ambiguous": False})
    both = type("Both", (E.FlyCapacityError,), {"transient": True, "terminal": True})
    assert broken_promises(retry_forever) == [
        "transient=False under FlyPrecondition.transient=True",
        "terminal=True under FlyPrecondition.terminal=False",
    ]
    assert broken_promises(sure_of_a_timeout) == [
        "ambiguous=False under FlyTimeout.ambiguous=True",
        "ambiguous=False under FlyAmbiguous.ambiguous=True",
    ]
    assert broken_promises(both) == ["both transient and terminal"]
    assert broken_promises(E.FlyVolumeHostFull) == []


def test_what_the_reconciler_relies_on() -> None:
    # A machine that failed is not a timeout, and waiting for it is not an ambiguous call.
    assert not issubclass(E.FlyMachineFailed, E.FlyWaitTimeout | E.FlyTimeout | E.FlyAmbiguous)
    assert E.FlyMachineFailed.terminal and not E.FlyMachineFailed.transient
    assert not issubclass(E.FlyWaitTimeout, E.FlyTimeout) and E.FlyWaitTimeout.ambiguous is False
    assert issubclass(E.FlyMachineDestroyed, E.FlyWaitError) and issubclass(E.FlyWaitTimeout, E.FlyWaitError)
    # Region capacity and quota: another region or park. Neither is worth repeating as is.
    for cls in (E.FlyRegionCapacity, E.FlyQuotaExceeded, E.FlyVolumeHostFull, E.FlyAppOwnedElsewhere):
        assert cls.terminal and not cls.transient, cls
    for cls in (E.FlyRateLimited, E.FlyLeaseHeld, E.FlySecretsNotVisible, E.FlyWrongState, E.FlyServerError):
        assert cls.transient and not cls.terminal, cls
    # A 5xx saying "deploys to this host are temporarily disabled" is a definite refusal.
    assert not E.FlyHostDisabled.ambiguous and not issubclass(E.FlyHostDisabled, E.FlyAmbiguous)


@dataclass(frozen=True)
class Drawn:
    name: str
    column: int
    parent: str | None
    flags: tuple[bool | None, ...]


def drawing() -> list[Drawn]:
    """The tree in errors.py's docstring: each class, the class drawn as its parent, its flags."""
    line_re = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>\w+)\s+(?P<flags>[Yn.] [Yn.] [Yn.])  ")
    drawn: list[Drawn] = []
    stack: list[Drawn] = []
    for line in (E.__doc__ or "").splitlines():
        match = line_re.match(line)
        if not match or not match["name"][0].isupper():
            continue
        column = len(match["lead"])
        while stack and stack[-1].column >= column:
            stack.pop()
        entry = Drawn(
            match["name"],
            column,
            stack[-1].name if stack else None,
            tuple(DRAWN[f] for f in match["flags"].split()),
        )
        drawn.append(entry)
        stack.append(entry)
    return drawn


def test_the_drawing_shows_every_class_once() -> None:
    names = [d.name for d in drawing()]
    assert sorted(names) == sorted(c.__name__ for c in fly_error_classes())
    assert len(names) == len(set(names))


@pytest.mark.parametrize("entry", drawing(), ids=lambda d: d.name)
def test_the_drawing_is_the_tree(entry: Drawn) -> None:
    cls = getattr(E, entry.name)
    parents = [b.__name__ for b in cls.__bases__ if issubclass(b, E.FlyError)]
    assert parents == ([entry.parent] if entry.parent else [])
    assert entry.flags == tuple(getattr(cls, flag) for flag in FLAGS)
