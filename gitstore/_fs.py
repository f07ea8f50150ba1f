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

import concurrent.futures
import contextlib
import errno
import fcntl
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    _fsync_path(path, os.O_DIRECTORY)


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
        fd, tmp = _create_temp(path)
    try:
        with open(fd, "wb", closefd=False) as f:
            yield f
        if fsync:
            os.fsync(fd)
        os.fchmod(fd, mode)
        os.replace(tmp, path)
    except BaseException:
        _drop_temp(fd, tmp)
        raise
    os.close(fd)
    if fsync and sync_dir:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def _create_temp(path: str) -> tuple[int, str]:
    """Create a temp file of its own name beside ``path`` (O_EXCL | O_NOFOLLOW: nothing already
    there is written through), readable by its owner only until it gets its mode; (fd, name)."""
    tmp = f"{path}.gitstore-tmp-{os.getpid()}-{os.urandom(4).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o600), tmp
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None


def _drop_temp(fd: int, tmp: str) -> None:
    """Remove and close a temp file whose writing failed (the error being raised is the news)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.close(fd)


def write_temp(path: str, chunks: Iterable[bytes], *, mode: int = 0o644) -> str:
    """Write ``chunks`` to a new temp file beside ``path``, with ``mode``; return its name.

    The first half of :func:`atomic_write`, for a caller writing many files: it makes them all
    durable at once (:func:`sync_files`) before it renames each temp file over its path, so a
    crash at any moment leaves each path as it was or whole. Nothing is fsync'd here. On an
    error (from the chunks too) the temp file is removed and nothing is left behind.

    Raises:
      OSError: the file cannot be written; one that names the temp file names ``path`` instead.
    """
    fd, tmp = _create_temp(path)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        os.fchmod(fd, mode)
    except BaseException:
        _drop_temp(fd, tmp)
        raise
    os.close(fd)
    return tmp


# Files fsync'd at the same time where one syncfs cannot do (see FileSync).
SYNC_THREADS = 16

# Above this many bytes waiting to be written back machine-wide, FileSync does not syncfs: it
# would wait for other programs' writes too.
SYNCFS_DIRTY_MAX = 64 << 20

# File systems whose syncfs writes back every dirty file and commits their journal (or
# equivalent) before it returns, as fsync of each file would. Network and FUSE file systems are
# not here: their syncfs may stop at the local page cache where fsync reaches the server.
_SYNCFS_SAFE = frozenset({"ext4", "ext3", "xfs", "btrfs", "f2fs", "tmpfs"})


class FileSync:
    """Makes many files durable at once, as an fsync of each would (:meth:`sync`).

    Made before the files are written, on the folders they go to: it opens one of them per file
    system then, so that a syncfs reports every write-back error on that file system from that
    moment on, even one another program's syncfs saw first (syncfs reports the errors since its
    descriptor was opened).

    On Linux 5.8 or later (where syncfs reports write-back errors as fsync does) and a local file
    system of :data:`_SYNCFS_SAFE`: one syncfs per file system the files are on. It writes back
    everything dirty there and commits the journal once, where an fsync per new file commits it
    once per file (1,000 files of ~8 KiB: ~0.05 s against ~0.2 s for 16 fsyncs at a time, 1 s
    one by one, on ext4). But it also waits for whatever other programs left unwritten there
    (seconds, on a machine busy writing): when the kernel holds more than :data:`SYNCFS_DIRTY_MAX`
    bytes not yet written (``/proc/meminfo``, ours included), or elsewhere, each file is
    fsync'd instead, :data:`SYNC_THREADS` at a time.
    """

    def __init__(self, folders: Iterable[str]) -> None:
        self._fds: dict[int, int] = {}  # device -> a folder on it, opened now
        self._usable: dict[int, bool] = {}  # device -> syncfs may stand for fsyncs there
        if _syncfs() is None:
            return
        try:
            for folder in folders:
                if os.stat(folder).st_dev in self._fds:
                    continue  # a file system already held: a stat, not an open
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                dev = os.fstat(fd).st_dev
                if dev in self._fds:  # the folder was swapped between the stat and the open
                    os.close(fd)
                    continue
                self._fds[dev] = fd
                self._usable[dev] = _fs_type(dev) in _SYNCFS_SAFE
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> FileSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self, paths: Sequence[str]) -> None:
        """Make the bytes of every file of ``paths`` durable.

        Raises:
          OSError: a file cannot be opened or synced (for syncfs: a write-back error anywhere
            on that file system since this object was made, which may not be ours; never
            ignored).
        """
        syncfs = _syncfs()
        if syncfs is None or _unwritten() > SYNCFS_DIRTY_MAX:
            _fsync_each(paths)
            return
        left: list[str] = []
        synced: set[int] = set()
        devs: dict[str, int] = {}
        for path in paths:
            folder = os.path.dirname(path)
            dev = devs.get(folder)
            if dev is None:
                dev = devs[folder] = os.stat(folder or ".").st_dev
            if not self._usable.get(dev, False):
                left.append(path)  # a file system not seen when this was made, or not trusted
            elif dev not in synced:
                if syncfs(self._fds[dev]) != 0:
                    e = _ctypes_errno()
                    raise OSError(e, os.strerror(e), folder)
                synced.add(dev)
        _fsync_each(left)

    def close(self) -> None:
        """Close the folders opened."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


def sync_files(paths: Sequence[str]) -> None:
    """Make the bytes of every file of ``paths`` durable, as an fsync of each would: a
    :class:`FileSync` made now (so a syncfs reports only the write-back errors from now on; to
    hear of every one since the files were written, make the FileSync before writing them)."""
    with FileSync({os.path.dirname(p) or "." for p in paths}) as sync:
        sync.sync(paths)


def _fsync_each(paths: Sequence[str]) -> None:
    """fsync every file of ``paths``, SYNC_THREADS at a time."""
    if len(paths) < 2:
        for path in paths:
            _fsync_path(path)
        return
    with concurrent.futures.ThreadPoolExecutor(SYNC_THREADS) as pool:
        for _ in pool.map(_fsync_path, paths):
            pass


def _unwritten() -> int:
    """Bytes the kernel holds to write back (dirty or under writeback; 0 if unknown)."""
    total = 0
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("Dirty:", "Writeback:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return total


def _fsync_path(path: str, flags: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ctypes_errno() -> int:
    """errno of the last libc call made through ctypes in this thread."""
    import ctypes

    return ctypes.get_errno()


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's syncfs where it reports writeback errors (Linux 5.8+), else None."""
    if os.uname().sysname != "Linux":
        return None
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    import ctypes  # here: only a durable export on Linux needs it

    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _fs_type(dev: int) -> str:
    """The type of the file system mounted from device ``dev`` ("" when not found), from
    /proc/self/mountinfo: ``id parent major:minor root mountpoint options ... - type ...``."""
    want = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == want and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        pass
    return ""


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
