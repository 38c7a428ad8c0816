"""Files that several processes write at once, and that only the owner may read.

Every gunicorn worker starts the service at the same moment, so anything written at start (the
last-known-good copy, keys, the schema) is written through these helpers:

- :func:`file_lock` serialises a critical section across processes (``flock`` on a lock file);
- :func:`write_atomically` writes a unique temporary file beside the target (``mkstemp``: never
  a name another process could pick), flushes it to disk and renames it over the target, so a
  reader sees the old bytes or the new ones, never a part;
- :func:`create_once` does the same but publishes with ``link``, which fails if the target exists:
  of processes creating the same file at once, exactly one wins and the others read its bytes
  (never an empty file half-written by the winner);
- :func:`make_private` takes group and world access away from a folder tree.

Files are created 0600 and folders 0700 (:data:`PRIVATE_UMASK` for the processes that write them).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The umask of the service and the CLI: what they create is the owner's alone.
PRIVATE_UMASK = 0o077
_OPEN = 0o077  # group and world bits


def private_umask() -> int:
    """Make what this process creates from now on owner-only; returns the previous umask."""
    return os.umask(PRIVATE_UMASK)


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (created 0600 if missing) for the block."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _staged(path: Path, data: bytes) -> Path:
    """``data`` in a new 0600 file beside ``path`` under a name no other process can pick,
    flushed to disk."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _sync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (0600) in one step: readers never see a partial file."""
    staged = _staged(path, data)
    try:
        staged.replace(path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def create_once(path: Path, data: bytes) -> bool:
    """Create ``path`` (0600) holding ``data`` unless it exists; True if this call created it.

    Complete or absent: the file appears under its name only once all its bytes are on disk.
    """
    if path.exists():
        return False
    staged = _staged(path, data)
    try:
        os.link(staged, path)
    except FileExistsError:
        return False  # another process created it first: theirs stands
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A file system without hard links: check and rename under a lock instead.
        with file_lock(path.with_name(f".{path.name}.lock")):
            if path.exists():
                return False
            staged.replace(path)
    finally:
        staged.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return True


def tighten(path: Path, mode: int | None = None) -> None:
    """Clear ``path``'s group and world bits (a file removed meanwhile is no error: another
    process's temporary file, say)."""
    try:
        if mode is None:
            found = path.lstat()
            if stat.S_ISLNK(found.st_mode):
                return
            mode = stat.S_IMODE(found.st_mode)
        if mode & _OPEN:
            os.chmod(path, mode & ~_OPEN)
    except FileNotFoundError:
        pass


def make_private(root: Path, *, deep: bool | None = None) -> None:
    """Take group and world access away from ``root`` and what it holds.

    ``deep``: walk the whole tree (default: only when ``root`` itself was open, a folder made
    before this rule; otherwise only its direct entries, where databases and keys live).
    Symbolic links are left alone (a link's target may be shared on purpose).
    """
    mode = stat.S_IMODE(root.lstat().st_mode)
    if deep is None:
        deep = bool(mode & _OPEN)
    tighten(root, mode)
    if deep:
        for folder, folders, files in os.walk(root):
            for name in [*folders, *files]:
                tighten(Path(folder) / name)
        return
    with os.scandir(root) as entries:
        for entry in entries:
            tighten(Path(entry.path))
