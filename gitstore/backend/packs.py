"""Small packs: a put's small objects as one Git pack, and small packs merged as they pile up.

A put of three small artifacts makes seven objects (three blobs, the manifest, two trees, the
commit). As loose objects that is seven file creations and renames, and with ``gitstore.fsync`` on
fourteen fsyncs; as one pack it is two files (``.pack`` then ``.idx``, which makes the pack visible
to readers) and three fsyncs. Packs are plain version-2 packs without deltas, readable by stock git.

Packs then pile up, one per put. Once there are more than :data:`MERGE_AT` of them, a writer merges
small packs geometrically, as ``git repack --geometric=2`` does: sorted by size, every pack that is
smaller than twice the sum of all smaller ones is merged with them, so the packs that remain grow
at least twofold from one to the next. The pack count stays logarithmic in the number of puts and
each object is copied O(log n) times in all. Entries are copied byte for byte (no inflating, no
compressing), duplicates dropped, and the old packs removed after the merged one is in place.
Readers that still hold an old pack open keep reading it (POSIX unlink semantics); dulwich rescans
the folder when a pack it knew has gone. Packs of :data:`SMALL_PACK` or more are left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import BinaryIO, NamedTuple

from dulwich.objects import ShaFile

from gitstore._fs import Busy, acquire_lock, fsync_dir, release_lock, write_all

__all__ = [
    "MERGE_AT",
    "SMALL_PACK",
    "Entry",
    "PackWriter",
    "check_pack_matches",
    "entry_header",
    "geometric",
    "read_index",
    "merge_small_packs",
    "packs_to_merge",
    "write_pack",
]

# A pack under this size counts as small and may be merged.
SMALL_PACK = 8 << 20
# Look for packs to merge once there are more packs than this.
MERGE_AT = 16
# Write buffer of a pack being written.
_BUFFER = 1 << 20


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


class _PackWriter:
    """Writes a version-2 pack entry by entry to a temp file, then its index; memory stays at
    (id, CRC, offset) per entry whatever the pack's size.

    A write that fails (a full disk, an I/O error) leaves no file behind: the temp files are
    removed on the error path, not left for gc.
    """

    def __init__(self, pack_dir: str, count: int, *, fsync: bool) -> None:
        self.pack_dir = pack_dir
        self.fsync = fsync
        self.tmp = _temp_name(pack_dir)
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        self.sha = hashlib.sha1()
        self.buf = bytearray()
        self.offset = 0
        self.rows: list[tuple[bytes, int, int]] = []
        self.count = count
        self._write(b"PACK" + struct.pack(">II", 2, count))

    def _write(self, data: bytes) -> None:
        self.sha.update(data)
        self.buf += data
        self.offset += len(data)
        if len(self.buf) >= _BUFFER:
            write_all(self.fd, bytes(self.buf))
            self.buf.clear()

    def add(self, sha: bytes, data: bytes, crc: int) -> None:
        self.rows.append((sha, crc, self.offset))
        self._write(data)

    def _close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def abort(self) -> None:
        """Close and remove the temp file (safe to call more than once)."""
        try:
            self._close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)

    def finish(self) -> str:
        """Seal the pack and write its index to temp files, then rename both into place.

        Everything that can fail for want of space happens before the first rename; the
        ``.pack`` is renamed first and the ``.idx`` last, since the index makes the pack visible.
        """
        idx_tmp = None
        try:
            if len(self.rows) != self.count:
                raise ValueError(f"pack promised {self.count} entries, got {len(self.rows)}")
            trailer = self.sha.digest()
            write_all(self.fd, bytes(self.buf) + trailer)
            self.buf.clear()
            if self.fsync:
                os.fsync(self.fd)
            self._close()
            idx_tmp = _write_temp(self.pack_dir, _index(self.rows, trailer), self.fsync)
            pack = _rename_into_place(
                os.path.join(self.pack_dir, "pack-" + trailer.hex()), self.tmp, idx_tmp
            )
        finally:
            self.abort()  # the temp files are gone once renamed; on an error they go here
            if idx_tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(idx_tmp)
        if self.fsync:
            fsync_dir(self.pack_dir)
        return pack


def write_pack(pack_dir: str, entries: Iterable[Entry], *, fsync: bool) -> str:
    """Write ``entries`` (duplicates dropped) as one pack and its index; return the pack's path.

    The ``.pack`` is renamed into place first and the ``.idx`` last: readers ignore a pack until
    its index is there. A write that fails removes what it wrote.
    """
    unique = list({e.sha: e for e in entries}.values())
    writer = _PackWriter(pack_dir, len(unique), fsync=fsync)
    try:
        for e in unique:
            writer.add(e.sha, e.data, e.crc)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def _temp_name(pack_dir: str) -> str:
    return os.path.join(pack_dir, f"tmp_pack_{os.getpid()}_{os.urandom(6).hex()}")


def _write_temp(pack_dir: str, data: bytes, fsync: bool) -> str:
    """A new temp file in ``pack_dir`` holding ``data``; nothing is left if writing it fails."""
    tmp = _temp_name(pack_dir)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _rename_into_place(base: str, pack_tmp: str, idx_tmp: str) -> str:
    """Rename a finished pack and then its index to ``base``.pack/.idx; return the pack's path.

    The name is the hash of the pack's bytes, so a pack already there under it holds the same
    bytes (or is a damaged copy, which this one repairs). If the index cannot be renamed, the
    pack goes too, unless an index (another writer's, of the same bytes) already names it.
    """
    os.replace(pack_tmp, base + ".pack")
    try:
        os.replace(idx_tmp, base + ".idx")
    except BaseException:
        if not os.path.exists(base + ".idx"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(base + ".pack")
        raise
    return base + ".pack"


def _index(rows: Sequence[tuple[bytes, int, int]], pack_sha: bytes) -> bytes:
    """A version-2 pack index for ``rows`` of (id, CRC-32, offset)."""
    order = sorted(rows)
    fanout = [0] * 256
    for sha, _, _ in rows:
        fanout[sha[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    out = bytearray(b"\xfftOc" + struct.pack(">I", 2))
    out += struct.pack(">256I", *fanout)
    out += b"".join(sha for sha, _, _ in order)
    out += b"".join(struct.pack(">I", crc) for _, crc, _ in order)
    large: list[int] = []
    for _, _, off in order:
        if off < 0x80000000:
            out += struct.pack(">I", off)
        else:
            out += struct.pack(">I", 0x80000000 | len(large))
            large.append(off)
    out += b"".join(struct.pack(">Q", off) for off in large)
    out += pack_sha
    out += hashlib.sha1(out).digest()
    return bytes(out)


def _read_index(base: str) -> tuple[list[tuple[int, bytes, int]], bytes]:
    """(offset, id, CRC-32) of every entry of pack ``base`` in pack order, and the pack's hash.

    ValueError if the index is damaged: a merge must copy every entry of a pack it removes.
    """
    with open(base + ".idx", "rb") as f:
        idx = f.read()
    if idx[:8] != b"\xfftOc" + struct.pack(">I", 2) or len(idx) < 8 + 1024 + 40:
        raise ValueError(f"{base}.idx: not a version-2 index")
    if hashlib.sha1(idx[:-20]).digest() != idx[-20:]:
        raise ValueError(f"{base}.idx: damaged (its checksum does not match)")
    n = struct.unpack_from(">I", idx, 8 + 255 * 4)[0]
    shas_at = 8 + 1024
    crcs_at = shas_at + 20 * n
    offs_at = crcs_at + 4 * n
    large_at = offs_at + 4 * n
    if len(idx) < large_at + 40:
        raise ValueError(f"{base}.idx: shorter than its {n} entries")
    rows = []
    try:
        for i in range(n):
            sha = idx[shas_at + 20 * i : shas_at + 20 * (i + 1)]
            crc = struct.unpack_from(">I", idx, crcs_at + 4 * i)[0]
            off = struct.unpack_from(">I", idx, offs_at + 4 * i)[0]
            if off & 0x80000000:
                off = struct.unpack_from(">Q", idx, large_at + 8 * (off & 0x7FFFFFFF))[0]
            rows.append((off, sha, crc))
    except struct.error:
        raise ValueError(f"{base}.idx: an offset points outside it") from None
    rows.sort()
    return rows, idx[-40:-20]


def _check_pack_matches(f: BinaryIO, count: int, pack_sha: bytes) -> None:
    """ValueError unless the pack open as ``f`` is the one its index was made for: same entry
    count, same trailing hash (a truncated or replaced pack is not)."""
    header = f.read(12)
    f.seek(-20, os.SEEK_END)
    if header[:4] != b"PACK" or header[8:12] != struct.pack(">I", count) or f.read(20) != pack_sha:
        raise ValueError(f"{getattr(f, 'name', 'pack')}: does not match its index")


def _copy_entries(
    base: str, rows: list[tuple[int, bytes, int]], writer: _PackWriter, done: set[bytes]
) -> None:
    """Copy the entries of pack ``base`` not yet in ``done`` into ``writer``, byte for byte."""
    with open(base + ".pack", "rb") as f:
        pack = f.read()
    if pack[:4] != b"PACK":
        raise ValueError(f"{base}.pack: not a pack")
    end = len(pack) - 20
    for i, (off, sha, crc) in enumerate(rows):
        if sha in done:
            continue
        stop = rows[i + 1][0] if i + 1 < len(rows) else end
        data = pack[off:stop]
        if zlib.crc32(data) != crc:
            raise ValueError(f"{base}: entry {sha.hex()} fails its CRC")
        writer.add(sha, data, crc)
        done.add(sha)


def merge_small_packs(pack_dir: str, *, fsync: bool, force: bool = False) -> bool:
    """Merge small packs geometrically once there are more than :data:`MERGE_AT` packs.

    Only one process merges at a time (others skip); packs holding deltas (which gitstore never
    writes) are left alone. ``force`` looks for packs to merge whatever their number (gc).
    Returns True if a merge happened.
    """
    chosen_names = packs_to_merge(pack_dir, force=force)
    if len(chosen_names) < 2:
        return False
    try:
        fd, lock = acquire_lock(os.path.join(pack_dir, "gitstore-merge"))
    except Busy:
        return False
    try:
        chosen: list[tuple[str, list[tuple[int, bytes, int]]]] = []
        for base in chosen_names:
            path = os.path.join(pack_dir, base)
            try:
                rows, pack_sha = _read_index(path)
                with open(path + ".pack", "rb") as f:
                    _check_pack_matches(f, len(rows), pack_sha)
                    kinds = [_entry_kind(f, off) for off, _, _ in rows]
            except (OSError, ValueError, IndexError):
                # Gone meanwhile, or damaged, or unreadable: leave it as it is, for reads and
                # verify to report and for git index-pack or a copy to repair.
                continue
            # Deltas (written by git gc, never by gitstore) may point at offsets in their own pack.
            if not any(k in (6, 7) for k in kinds):
                chosen.append((path, rows))
        if len(chosen) < 2:
            return False
        unique = {sha for _, rows in chosen for _, sha, _ in rows}
        writer = _PackWriter(pack_dir, len(unique), fsync=fsync)
        done: set[bytes] = set()
        try:
            for path, rows in chosen:
                _copy_entries(path, rows, writer, done)
        except (FileNotFoundError, ValueError):
            writer.abort()
            return False
        except BaseException:
            writer.abort()
            raise
        merged = writer.finish()
        for base, _ in chosen:
            if base + ".pack" == merged:
                continue
            # Index first: without it a pack is invisible, so no reader picks up a half-removed one.
            for ext in (".idx", ".pack"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base + ext)
        return True
    finally:
        release_lock(fd, lock)


def packs_to_merge(pack_dir: str, *, force: bool = False) -> list[str]:
    """Base names of the small packs the geometric rule would merge now (none: fewer than 2)."""
    try:
        names = os.listdir(pack_dir)
    except FileNotFoundError:
        return []
    if not force and sum(1 for n in names if n.endswith(".pack")) <= MERGE_AT:
        return []
    small = []
    for n in names:
        if n.endswith(".pack") and n[:-5] + ".idx" in names:
            with contextlib.suppress(FileNotFoundError):
                size = os.stat(os.path.join(pack_dir, n)).st_size
                if size < SMALL_PACK and not os.path.exists(
                    os.path.join(pack_dir, n[:-5] + ".keep")
                ):
                    small.append((size, n[:-5]))
    chosen = _geometric(small)
    return chosen if len(chosen) >= 2 else []


def _geometric(packs: list[tuple[int, str]]) -> list[str]:
    """The packs to merge so that the rest grow at least twofold: (size, name) in, names out."""
    packs = sorted(packs)
    upto = -1
    total = 0
    for i, (size, _) in enumerate(packs):
        if i and size < 2 * total:
            upto = i
        total += size
    return [name for _, name in packs[: upto + 1]]


def _entry_kind(f: BinaryIO, offset: int) -> int:
    f.seek(offset)
    return (f.read(1)[0] >> 4) & 7


# Public names for gc's pack rewrite (gitstore.backend.repack), which builds on the same writer
# and index reader as the merges above.
PackWriter = _PackWriter
read_index = _read_index
entry_header = _entry_header
check_pack_matches = _check_pack_matches
geometric = _geometric
