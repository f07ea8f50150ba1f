"""Small packs: a put's small objects as one Git pack, and small packs merged as they pile up.

A put of three small artifacts makes seven objects (three blobs, the manifest, two trees, the
commit). As loose objects that is seven file creations and renames, and with ``gitstore.fsync`` on
fourteen fsyncs; as one pack it is two files (``.pack`` then ``.idx``, which makes the pack visible
to readers) and three fsyncs. Packs are plain version-2 packs without deltas, readable by stock git.

Packs then pile up, one per put, so a writer that finds more than :data:`MERGE_AT` small packs
merges the smallest of them into one: entries are copied byte for byte (no inflating, no
compressing), duplicates dropped, and the old packs removed after the merged one is in place.
Readers that still hold an old pack open keep reading it (POSIX unlink semantics); dulwich rescans
the folder when a pack it knew has gone. Merging the :data:`MERGE_AT` smallest packs each time keeps
the number of packs logarithmic in the number of puts and the cost per object amortised O(log n).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from dulwich.objects import ShaFile

from gitstore._fs import Busy, acquire_lock, fsync_dir, release_lock, write_all

__all__ = ["MERGE_AT", "SMALL_PACK", "Entry", "merge_small_packs", "write_pack"]

# A pack under this size counts as small and may be merged.
SMALL_PACK = 8 << 20
# Merge once there are more small packs than this; merge this many at a time.
MERGE_AT = 32


class Entry(NamedTuple):
    """One packed object: its binary id, the entry bytes (header + zlib data) and their CRC-32."""

    sha: bytes
    data: bytes
    crc: int


def entry_for(obj: ShaFile, level: int) -> Entry:
    """The pack entry of an object: type/size header, then the zlib-compressed body."""
    raw = obj.as_raw_string()
    data = _entry_header(obj.type_num, len(raw)) + zlib.compress(raw, level)
    return Entry(obj.sha().digest(), data, zlib.crc32(data))


def _entry_header(kind: int, size: int) -> bytes:
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def write_pack(pack_dir: str, entries: Iterable[Entry], *, fsync: bool) -> str:
    """Write ``entries`` (duplicates dropped) as one pack and its index; return the pack's path.

    The ``.pack`` is renamed into place first and the ``.idx`` last: readers ignore a pack until
    its index is there, so a crash leaves at worst an orphan ``.pack`` for gc.
    """
    seen: set[bytes] = set()
    unique = []
    for e in entries:
        if e.sha not in seen:
            seen.add(e.sha)
            unique.append(e)
    body = bytearray(b"PACK" + struct.pack(">II", 2, len(unique)))
    offsets = []
    for e in unique:
        offsets.append(len(body))
        body += e.data
    trailer = hashlib.sha1(body).digest()
    body += trailer
    index = _index(unique, offsets, trailer)
    name = os.path.join(pack_dir, "pack-" + trailer.hex())
    _install(pack_dir, name + ".pack", bytes(body), fsync)
    _install(pack_dir, name + ".idx", index, fsync)
    if fsync:
        fsync_dir(pack_dir)
    return name + ".pack"


def _install(pack_dir: str, path: str, data: bytes, fsync: bool) -> None:
    tmp = os.path.join(pack_dir, f"tmp_pack_{os.getpid()}_{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def _index(entries: Sequence[Entry], offsets: Sequence[int], pack_sha: bytes) -> bytes:
    """A version-2 pack index for ``entries`` at ``offsets``."""
    order = sorted(range(len(entries)), key=lambda i: entries[i].sha)
    fanout = [0] * 256
    for e in entries:
        fanout[e.sha[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    out = bytearray(b"\xfftOc" + struct.pack(">I", 2))
    out += struct.pack(">256I", *fanout)
    out += b"".join(entries[i].sha for i in order)
    out += b"".join(struct.pack(">I", entries[i].crc) for i in order)
    large: list[int] = []
    for i in order:
        off = offsets[i]
        if off < 0x80000000:
            out += struct.pack(">I", off)
        else:
            out += struct.pack(">I", 0x80000000 | len(large))
            large.append(off)
    out += b"".join(struct.pack(">Q", off) for off in large)
    out += pack_sha
    out += hashlib.sha1(out).digest()
    return bytes(out)


def _read_entries(base: str) -> list[Entry]:
    """Every entry of the pack ``base`` (.pack/.idx), copied as raw bytes."""
    with open(base + ".idx", "rb") as f:
        idx = f.read()
    with open(base + ".pack", "rb") as f:
        pack = f.read()
    if idx[:8] != b"\xfftOc" + struct.pack(">I", 2) or pack[:4] != b"PACK":
        raise ValueError(f"{base}: not a version-2 pack")
    n = struct.unpack_from(">I", idx, 8 + 255 * 4)[0]
    shas_at = 8 + 1024
    crcs_at = shas_at + 20 * n
    offs_at = crcs_at + 4 * n
    large_at = offs_at + 4 * n
    rows = []
    for i in range(n):
        sha = idx[shas_at + 20 * i : shas_at + 20 * (i + 1)]
        crc = struct.unpack_from(">I", idx, crcs_at + 4 * i)[0]
        off = struct.unpack_from(">I", idx, offs_at + 4 * i)[0]
        if off & 0x80000000:
            off = struct.unpack_from(">Q", idx, large_at + 8 * (off & 0x7FFFFFFF))[0]
        rows.append((off, sha, crc))
    rows.sort()
    end = len(pack) - 20
    entries = []
    for i, (off, sha, crc) in enumerate(rows):
        stop = rows[i + 1][0] if i + 1 < len(rows) else end
        data = pack[off:stop]
        if zlib.crc32(data) != crc:
            raise ValueError(f"{base}: entry {sha.hex()} fails its CRC")
        entries.append(Entry(sha, data, crc))
    return entries


def merge_small_packs(pack_dir: str, *, fsync: bool) -> bool:
    """Merge the smallest packs when there are more than :data:`MERGE_AT` small ones.

    Only one process merges at a time (others skip); packs holding deltas (which gitstore never
    writes) are left alone. Returns True if a merge happened.
    """
    try:
        names = os.listdir(pack_dir)
    except FileNotFoundError:
        return False
    small = []
    for n in names:
        if n.endswith(".pack") and n[:-5] + ".idx" in names:
            with contextlib.suppress(FileNotFoundError):
                size = os.stat(os.path.join(pack_dir, n)).st_size
                if size < SMALL_PACK and not os.path.exists(
                    os.path.join(pack_dir, n[:-5] + ".keep")
                ):
                    small.append((size, n[:-5]))
    if len(small) <= MERGE_AT:
        return False
    try:
        fd, lock = acquire_lock(os.path.join(pack_dir, "gitstore-merge"))
    except Busy:
        return False
    try:
        small.sort()
        chosen: list[str] = []
        entries: list[Entry] = []
        for _, base in small[:MERGE_AT]:
            path = os.path.join(pack_dir, base)
            try:
                found = _read_entries(path)
            except (FileNotFoundError, ValueError):
                continue  # gone meanwhile, or not ours to copy: leave it
            # Deltas (written by git gc, never by gitstore) may point at offsets in their own pack.
            if not any(_is_delta(e) for e in found):
                chosen.append(path)
                entries.extend(found)
        if len(chosen) < 2:
            return False
        merged = write_pack(pack_dir, entries, fsync=fsync)
        for base in chosen:
            if base + ".pack" == merged:
                continue
            # Index first: without it a pack is invisible, so no reader picks up a half-removed one.
            for ext in (".idx", ".pack"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base + ext)
        return True
    finally:
        release_lock(fd, lock)


def _is_delta(entry: Entry) -> bool:
    return (entry.data[0] >> 4) & 7 in (6, 7)
