"""File-system helpers: files written whole or not at all, directory fsync, and lock files that
a dead writer cannot leave blocking.

Every file gitstore writes whole (config, caches, exported artifacts, ``get -o``, bundles, a
rewritten ``packed-refs``) goes through :func:`atomic_write`; objects, packs and refs have their
own protocols in :mod:`gitstore.backend`, built from the same pieces.

Locking follows git's convention (``<path>.lock`` created with O_EXCL), so stock git and gitstore
exclude each other. On top, the holder keeps an ``flock`` on its lock file for as long as it lives.
A lock left behind by a killed writer is recognised as stale when nobody holds that flock and the
file is older than :data:`STALE_AFTER` seconds; it is then moved aside while the breaker itself
holds the flock, so two breakers cannot both break it and a live writer is never mistaken for a
dead one (the kernel drops an flock only when its holder is gone).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from typing import BinaryIO

# A lock file nobody holds an flock on is stale once it is this old. Live writers hold their lock
# for well under a millisecond plus one fsync; only the moment between creating the file and taking
# its flock is unprotected, and this margin covers it.
STALE_AFTER = 2.0


class Busy(Exception):
    """Another live writer holds the lock right now; try again shortly."""


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path: str) -> None:
    """fsync a directory, so that a rename or a new entry in it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str,
    *,
    mode: int = 0o644,
    fsync: bool = True,
    sync_dir: bool = True,
    lock: bool = False,
    wait: float = 0.0,
) -> Iterator[BinaryIO]:
    """A file written whole or not at all: yields a binary file to write ``path``'s new bytes to.

    On a clean exit the bytes are flushed (and fsync'd when ``fsync``), the file gets ``mode``
    and is renamed over ``path``, and the folder is fsync'd (when ``fsync`` and ``sync_dir``; a
    caller writing many files into one folder may sync it once at the end). On an error the
    temp file is removed and ``path`` is untouched.

    The temp file sits beside ``path``. With ``lock`` it is ``<path>.lock``, taken as git takes
    it (:func:`acquire_lock`), so stock git and other writers of the same file wait for each
    other and a read of ``path`` inside the block sees no concurrent change; ``wait`` seconds of
    contention are waited out, then :class:`Busy`. Otherwise it gets a name of its own, created
    with O_EXCL | O_NOFOLLOW so that nothing already there is written through.

    Raises:
      OSError: the file cannot be written; one that names the temp file names ``path`` instead.
    """
    if lock:
        fd, tmp = _acquire_waiting(path, wait)
    else:
        tmp = f"{path}.gitstore-tmp-{os.getpid()}-{os.urandom(4).hex()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
        except OSError as e:
            raise OSError(e.errno, e.strerror, path) from None
    try:
        with open(fd, "wb", closefd=False) as f:
            yield f
        if fsync:
            os.fsync(fd)
        os.fchmod(fd, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.close(fd)
        raise
    os.close(fd)
    if fsync and sync_dir:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def _acquire_waiting(path: str, wait: float) -> tuple[int, str]:
    deadline = time.monotonic() + wait
    while True:
        try:
            return acquire_lock(path)
        except Busy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def acquire_lock(path: str) -> tuple[int, str]:
    """Create ``path + '.lock'`` exclusively and take its flock; break it once if it is stale."""
    lock = path + ".lock"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            if _break_stale(lock):
                continue
            raise Busy(lock) from None
        except FileNotFoundError:
            os.makedirs(os.path.dirname(lock), exist_ok=True)
            continue
        # Blocking: a breaker looking at our brand-new file holds its flock only for an instant
        # and leaves young files alone.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            still_ours = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            still_ours = False
        if still_ours:
            return fd, lock
        os.close(fd)
    raise Busy(lock)


def release_lock(fd: int, lock: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock)
    os.close(fd)


def _flock_now(fd: int) -> bool:
    """Take an exclusive flock on ``fd`` if nobody holds one; False if a live holder does."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _break_stale(lock: str) -> bool:
    """Move a dead writer's lock file aside. True if the lock is gone (retry), False if live."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        if not _flock_now(fd):
            return False
        st = os.fstat(fd)
        if time.time() - st.st_mtime < STALE_AFTER:
            return False
        # We hold the flock on this inode, so no other breaker can act on it; if the path still
        # names it, nobody but us can change that before the rename below.
        try:
            if os.stat(lock).st_ino != st.st_ino:
                return True
        except FileNotFoundError:
            return True
        # "~" cannot appear in a task name, so listings can never take the tomb for a task.
        tomb = f"{lock}~stale-{os.getpid()}-{os.urandom(4).hex()}"
        os.rename(lock, tomb)
        os.unlink(tomb)
        return True
    finally:
        os.close(fd)


def remove_if_stale(path: str, older_than: float) -> bool:
    """Delete a temp file nobody holds an flock on and that is older than ``older_than`` seconds.

    Writers of temp files that may live long (big blobs, spooled streams) hold an flock on them, so
    a slow live writer is never mistaken for a dead one. Returns True if the file was removed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, IsADirectoryError):
        return False
    try:
        if not _flock_now(fd):
            return False
        if time.time() - os.fstat(fd).st_mtime < older_than:
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def break_stale_lock(lock: str) -> bool:
    """Remove ``lock`` if its writer is dead (see :func:`acquire_lock`); True if it was removed."""
    return os.path.exists(lock) and _break_stale(lock) and not os.path.exists(lock)
