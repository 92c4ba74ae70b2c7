"""Files that hold secrets or tenant data: private (0600) from the first byte.

Every such file (the demo's ``.env`` with the vault key ring, the SQLite / libSQL database with its
WAL and SHM files, the Fly emulator's snapshot, a token file) is created here with an explicit mode
passed to ``open(2)``, never created with the default mode and narrowed afterwards: a process that
opens the file in between would keep a readable handle. Writes that replace a file go through a
private temporary file in the same directory and ``os.replace``. Symbolic links are not followed
where a file is created.

``check_private`` refuses a file that other users can read or write (``Refused``, exit 3).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from controlplane.errors import Refused

PRIVATE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open`` with mode 0600 at creation (the umask can only narrow it) and no symlink followed."""
    return os.open(path, flags | _NOFOLLOW | _CLOEXEC, PRIVATE_MODE)


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty and private if it does not exist; True if this call created it."""
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def append_private(path: str | os.PathLike[str], text: str) -> None:
    """Append ``text`` (UTF-8) to ``path``, creating it private if it does not exist; a file left
    readable by others (an older version's) is tightened before anything is written to it."""
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_private(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Replace ``path`` atomically with ``data``: a private temporary file beside it, then a rename.
    The result is 0600 whatever mode the old file had."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    for attempt in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{attempt}.tmp")
        try:
            fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 stale temporary files
        raise FileExistsError(f"{target}: could not create a temporary file beside it")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def others_can_access(path: str | os.PathLike[str]) -> bool:
    """Whether group or other users have any permission on ``path`` (which must exist)."""
    return bool(os.stat(path).st_mode & 0o077)


def check_private(path: str | os.PathLike[str], what: str) -> None:
    """Refuse (``Refused``, naming ``what``) a file that other users can read or write, or that is
    not a regular file. A missing file passes."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise Refused(what, f"{os.fspath(path)} is not a regular file")
    if st.st_mode & 0o077:
        raise Refused(
            what,
            f"{os.fspath(path)} can be read or written by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"make it private first: chmod 600 {os.fspath(path)}",
        )


def restrict_umask() -> None:
    """Narrow the process umask so that files created without an explicit mode are private too
    (group and other bits masked; other bits kept). For files a library writes by itself, such as
    the libSQL SDK's embedded replica (the synced database arrives through a temporary file and a
    rename, beside a ``<db>-info`` file)."""
    current = os.umask(0o077)
    os.umask(current | 0o077)


#: What SQLite (and libSQL) put beside a database file; SQLite gives them the database's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def prepare_database_file(path: str | os.PathLike[str]) -> None:
    """Before SQLite opens ``path``: create it empty and private if it is missing (SQLite then
    creates its WAL, SHM and journal files with the same mode). An existing database or companion
    file that others can access is narrowed to 0600 (files of an older version)."""
    try:
        if create_private(path):
            return
    except OSError:
        return  # no such directory, no permission ...: SQLite reports it when it opens the file
    for name in (os.fspath(path), *(os.fspath(path) + s for s in SQLITE_COMPANIONS)):
        with contextlib.suppress(OSError):  # missing, or a symbolic link (left alone)
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
                    os.fchmod(fd, PRIVATE_MODE)
            finally:
                os.close(fd)


__all__ = [
    "PRIVATE_MODE",
    "SQLITE_COMPANIONS",
    "append_private",
    "check_private",
    "create_private",
    "open_private",
    "others_can_access",
    "prepare_database_file",
    "restrict_umask",
    "write_private",
]
