"""The ref layer: task refs read, listed and moved by compare-and-swap.

Refs stay loose (one file each under ``refs/artifacts/<spec>/<task>``): a lookup is one small read
whatever the number of tasks, and no pack-refs step can race with writers. Refs packed by stock
``git gc`` are still read (a loose ref overrides its packed entry, as in git).

Moves take ``<ref>.lock`` with :func:`gitstore._fs.acquire_lock` (git's lock-file convention plus
an flock, so that a lock left by a killed writer is broken after :data:`STALE_AFTER` seconds and a
live writer's lock never is), then rename the lock file over the ref.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from gitstore._fs import STALE_AFTER, Busy, acquire_lock, atomic_write, fsync_dir, release_lock

__all__ = [
    "STALE_AFTER",
    "ZERO",
    "Busy",
    "DiskRefs",
    "MemoryRefs",
    "RACY_NS",
    "RefBackend",
]

ZERO = "0" * 40
# A folder changed less than this long ago gives no stamp (see DiskRefs.stamp): file systems
# that keep whole seconds (or two, on FAT) could show a later change with the same time.
RACY_NS = 3_000_000_000

# Threads that fsync the lock files of a batch of ref moves side by side: the file system
# journal commits concurrent fsyncs together, so N refs cost a few journal commits, not N.
_SYNC_THREADS = 8
_sync_pool: concurrent.futures.ThreadPoolExecutor | None = None
_sync_pool_lock = threading.Lock()

_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _fsync_all(fds: Sequence[int]) -> None:
    """fsync every file of ``fds``, several at once when there are several."""
    global _sync_pool
    if len(fds) == 1:
        os.fsync(fds[0])
        return
    with _sync_pool_lock:
        if _sync_pool is None:
            _sync_pool = concurrent.futures.ThreadPoolExecutor(
                _SYNC_THREADS, thread_name_prefix="gitstore-fsync"
            )
        pool = _sync_pool
    for _ in pool.map(os.fsync, fds):
        pass


class RefBackend(Protocol):
    """What the store needs from a ref database; disk and memory implement it alike."""

    def get(self, name: str) -> str | None: ...

    def cas(self, name: str, old: str | None, new: str) -> bool: ...

    def cas_many(self, moves: Sequence[tuple[str, str | None, str]]) -> list[bool]: ...

    def delete(self, name: str, old: str) -> bool: ...

    def children(self, prefix: str) -> list[str]: ...

    def items(self, prefix: str) -> dict[str, str]: ...

    def stamp(self, prefix: str) -> tuple[int, ...] | None: ...


class MemoryRefs:
    """Refs in a dict behind a lock: the in-memory twin of :class:`DiskRefs`."""

    def __init__(self) -> None:
        self._refs: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._refs.get(name)

    def cas(self, name: str, old: str | None, new: str) -> bool:
        with self._lock:
            if self._refs.get(name) != old:
                return False
            self._refs[name] = new
            return True

    def cas_many(self, moves: Sequence[tuple[str, str | None, str]]) -> list[bool]:
        return [self.cas(name, old, new) for name, old, new in moves]

    def delete(self, name: str, old: str) -> bool:
        with self._lock:
            if self._refs.get(name) != old:
                return False
            del self._refs[name]
            return True

    def children(self, prefix: str) -> list[str]:
        with self._lock:
            names = {n[len(prefix) :].split("/", 1)[0] for n in self._refs if n.startswith(prefix)}
        return sorted(names)

    def items(self, prefix: str) -> dict[str, str]:
        with self._lock:
            return {n: v for n, v in self._refs.items() if n.startswith(prefix)}

    def stamp(self, prefix: str) -> tuple[int, ...] | None:
        """Always None: reading refs in memory costs less than keeping stamps."""
        return None


class DiskRefs:
    """Loose refs in a Git directory, moved with an flock-guarded O_EXCL lock file."""

    def __init__(self, gitdir: str, *, fsync: bool) -> None:
        self.gitdir = gitdir
        self.fsync = fsync
        self._packed_key: tuple[int, int, int] | None = None
        self._packed: dict[str, str] = {}
        self._packed_lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.gitdir, name)

    def _read_loose(self, name: str) -> str | None:
        return _read_value(self._path(name))

    def packed(self) -> dict[str, str]:
        """The ``packed-refs`` file as a dict, re-read only when the file changes."""
        path = os.path.join(self.gitdir, "packed-refs")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._packed_lock:
            if key != self._packed_key:
                refs: dict[str, str] = {}
                with open(path, "rb") as f:
                    for line in f:
                        if line.startswith((b"#", b"^")):
                            continue
                        sha, _, ref = line.rstrip(b"\n").partition(b" ")
                        if ref:
                            refs[ref.decode("utf-8", "replace")] = sha.decode("ascii")
                self._packed, self._packed_key = refs, key
            return self._packed

    def get(self, name: str) -> str | None:
        value = self._read_loose(name)
        if value is None:
            value = self.packed().get(name)
        return value

    def children(self, prefix: str) -> list[str]:
        """Names of the next path component below ``prefix`` (which ends with ``/``)."""
        out: set[str] = set()
        try:
            entries = os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        for entry in entries:
            if not entry.endswith(".lock") and "~" not in entry:
                out.add(entry)
        for ref in self.packed():
            if ref.startswith(prefix):
                out.add(ref[len(prefix) :].split("/", 1)[0])
        return sorted(out)

    def items(self, prefix: str) -> dict[str, str]:
        """Every ref below ``prefix`` (a folder, ending with ``/``) with its value (loose ones
        override packed ones)."""
        refs = {r: v for r, v in self.packed().items() if r.startswith(prefix)}
        self._scan(prefix.rstrip("/"), refs)
        return refs

    def _scan(self, folder: str, out: dict[str, str]) -> None:
        """Add the loose refs below ``folder`` (a ref name prefix without ``/``) to ``out``.

        scandir, not os.walk: its entries carry their kinds, so a listing of 100k refs costs
        the three system calls of each read and little else. Each file is opened relative to
        its folder's descriptor: the kernel resolves one name instead of the whole path, and
        no path is joined (a tenth of a 100k-ref listing).
        """
        try:
            folder_fd = os.open(self._path(folder), _FOLDER_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            with os.scandir(folder_fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name.endswith(".lock") or "~" in name:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        self._scan(f"{folder}/{name}", out)
                        continue
                    value = _read_value(name, folder_fd)
                    if value is not None:
                        out[f"{folder}/{name}"] = value
        finally:
            os.close(folder_fd)

    def stamp(self, prefix: str) -> tuple[int, ...] | None:
        """A value that differs whenever a ref directly in folder ``prefix`` (ending with ``/``)
        may have been added, moved or removed since it was taken; None when that cannot be
        told. Caches of what refs name (the query index) compare it instead of reading every ref.

        It is the folder's identity and change times (git and gitstore move a ref by renaming
        a file into the folder, which changes them) with the same of ``packed-refs``. A folder
        changed within :data:`RACY_NS` of now gives None, since a second change in the same
        clock tick would leave the same time. A ref rewritten in place
        (not by rename, as neither git nor gitstore ever does) is not seen by it.
        """
        key: list[int] = []
        now = time.time_ns()
        for path in (self._path(prefix), os.path.join(self.gitdir, "packed-refs")):
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                key += (0, 0, 0, 0)
                continue
            if abs(now - st.st_mtime_ns) < RACY_NS or abs(now - st.st_ctime_ns) < RACY_NS:
                return None
            key += (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        return tuple(key)

    # -- writing ---------------------------------------------------------------------------

    def cas(self, name: str, old: str | None, new: str) -> bool:
        """Set ``name`` to ``new`` if it currently is ``old`` (None: must not exist).

        Returns False when the ref holds another value; raises :class:`Busy` when a live writer
        holds the lock.
        """
        path = self._path(name)
        fd, lock = acquire_lock(path)
        try:
            if self.get(name) != old:
                release_lock(fd, lock)
                return False
            os.write(fd, new.encode("ascii") + b"\n")
            if self.fsync:
                os.fsync(fd)
            os.rename(lock, path)
        except BaseException:
            release_lock(fd, lock)
            raise
        os.close(fd)
        if self.fsync:
            fsync_dir(os.path.dirname(path))
        return True

    def cas_many(self, moves: Sequence[tuple[str, str | None, str]]) -> list[bool]:
        """:meth:`cas` for several refs at once, with one round of fsyncs: each ``(name, old,
        new)`` moves, or not, on its own; the answer says which did (False: the ref held
        another value, or a live writer held its lock).

        Every lock is taken and written first, the lock files fsync'd side by side, then each
        renamed over its ref and each folder fsync'd once: a batch of N refs waits for a few
        journal commits instead of 2N fsyncs.
        """
        done = [False] * len(moves)
        held: list[tuple[int, int, str, str]] = []
        try:
            for i, (name, old, new) in enumerate(moves):
                path = self._path(name)
                try:
                    fd, lock = acquire_lock(path)
                except Busy:
                    continue
                try:
                    if self.get(name) != old:
                        release_lock(fd, lock)
                        continue
                    os.write(fd, new.encode("ascii") + b"\n")
                except BaseException:
                    release_lock(fd, lock)
                    raise
                held.append((i, fd, lock, path))
            if self.fsync and held:
                _fsync_all([fd for _, fd, _, _ in held])
            while held:
                i, fd, lock, path = held[0]
                os.rename(lock, path)
                held.pop(0)
                os.close(fd)
                done[i] = True
        finally:
            for _, fd, lock, _ in held:  # not renamed: an error came first
                release_lock(fd, lock)
        if self.fsync:
            for folder in sorted(
                {os.path.dirname(self._path(moves[i][0])) for i, ok in enumerate(done) if ok}
            ):
                fsync_dir(folder)
        return done

    def delete(self, name: str, old: str) -> bool:
        """Remove ``name`` (loose and packed) if it currently is ``old``."""
        path = self._path(name)
        fd, lock = acquire_lock(path)
        try:
            if self.get(name) != old:
                return False
            if name in self.packed():
                self._drop_packed(name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return True
        finally:
            release_lock(fd, lock)
            # The last task of a spec takes its folder with it, so listings forget the spec. A
            # writer that created the folder meanwhile keeps it (rmdir fails on a non-empty one)
            # or re-creates it (acquire_lock retries on a vanished folder).
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))

    def _drop_packed(self, name: str) -> None:
        """Rewrite ``packed-refs`` without ``name``, under git's ``packed-refs.lock``."""
        packed_path = os.path.join(self.gitdir, "packed-refs")
        with atomic_write(packed_path, lock=True, wait=10, fsync=self.fsync) as out:
            with open(packed_path, "rb") as f:
                lines = f.read().splitlines(keepends=True)
            keep: list[bytes] = []
            skip_peel = False
            for line in lines:
                if line.startswith(b"^"):
                    if not skip_peel:
                        keep.append(line)
                    continue
                skip_peel = line.rstrip(b"\n").endswith(b" " + name.encode())
                if not skip_peel:
                    keep.append(line)
            out.write(b"".join(keep))


def _read_value(path: str, folder_fd: int | None = None) -> str | None:
    """The object id a loose ref file holds, or None (no such file, or not a value gitstore or
    git writes there: empty, symbolic, a folder). ``path`` is relative to ``folder_fd`` when
    that is given."""
    # os.open/os.read, not open(): a listing reads every ref, and the buffered file object
    # cost twice as much as the read itself.
    try:
        fd = os.open(path, _FILE_FLAGS, dir_fd=folder_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        value = os.read(fd, 128).strip()
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    return value.decode("ascii", "replace") if len(value) == 40 else None
