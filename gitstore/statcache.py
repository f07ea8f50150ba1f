"""The stat index: lets a re-put of an unchanged file or folder skip reading its bytes.

For each folder gitstore has read files from, it keeps ``path -> (size, mtime, ctime, inode,
device, mode) -> (blob id, sha256)`` in ``<store>/gitstore/statcache/<xxh3 of the folder>``.
xxhash names the files and never decides identity: a hit only skips re-hashing a file whose stat
data is exactly what it was when gitstore last read it, and only when that blob is still in the
store. Two rules keep it honest:

* racy entries are never trusted: a file modified (mtime or ctime) within :data:`RACY_NS` of the
  moment its entry was recorded could change again inside the same timestamp tick, so its entry is
  re-read next time (and recorded as trustworthy then), as git treats racily-clean index entries;
* the cache is advisory: a damaged, missing or concurrently replaced file just means a slow path.
"""

from __future__ import annotations

import os
import time

import msgspec
import xxhash

from gitstore._fs import atomic_write

__all__ = ["RACY_NS", "StatCache", "StatKey", "stat_key"]

RACY_NS = 1_000_000_000

StatKey = tuple[int, int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """The stat fields that must all be unchanged for a file to count as unchanged."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode)


class _Entry(msgspec.Struct, array_like=True):
    key: tuple[int, int, int, int, int, int]
    oid: str
    sha256: str
    recorded_ns: int


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[str, _Entry])


class StatCache:
    """The stat index of one folder (files are keyed by their path relative to it)."""

    def __init__(self, cache_dir: str, folder: str, *, fsync: bool = True) -> None:
        self.fsync = fsync
        self.path = os.path.join(
            cache_dir, xxhash.xxh3_64_hexdigest(os.fsencode(os.path.abspath(folder)))
        )
        self._entries: dict[str, _Entry] = {}
        self._dirty = False
        try:
            with open(self.path, "rb") as f:
                self._entries = _decoder.decode(f.read())
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            self._entries = {}

    def lookup(self, rel: str, st: os.stat_result) -> tuple[str, str] | None:
        """(blob id, sha256) recorded for ``rel`` if its stat data is unchanged and not racy."""
        entry = self._entries.get(rel)
        if entry is None or tuple(entry.key) != stat_key(st):
            return None
        # ctime too: restoring an old mtime with utime sets ctime to now, so a same-size rewrite
        # followed by a restore is as racy as a fresh write until the ctime is old enough.
        if entry.recorded_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
            return None
        return entry.oid, entry.sha256

    def record(self, rel: str, st: os.stat_result, oid: str, sha256: str) -> None:
        """Remember what ``rel`` hashed to, as read with stat data ``st``."""
        self._entries[rel] = _Entry(stat_key(st), oid, sha256, time.time_ns())
        self._dirty = True

    def save(self) -> None:
        """Write the index back (atomically; a concurrent writer's version may win, harmlessly)."""
        if not self._dirty:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with atomic_write(self.path, fsync=self.fsync) as f:
            f.write(_encoder.encode(self._entries))
        self._dirty = False
