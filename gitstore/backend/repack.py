"""Pack rewrites for gc and expunge: chosen entries copied raw into new packs, the rest dropped.

A pack is read through its index (:func:`read_pack`): every entry's offset, id, CRC-32, kind and,
for a delta, the id of its base. :func:`write_picked` then writes a new pack holding exactly the
entries picked from any number of packs, copying each entry's bytes as they are on disk, in
chunks: no entry is inflated or compressed again, and memory does not grow with an entry's size
(a 1 GiB blob costs a 1 MiB buffer). The source entry's CRC-32 from its index is checked while
copying; a mismatch aborts the rewrite before anything is removed.

Deltas (which gitstore never writes, but packs fetched from a Git server or made by ``git gc``
hold) are kept whole: a picked delta brings its base along (:func:`with_bases`), since git looks
a delta's base up in the delta's own pack. An offset delta (whose base is named by its distance
back in the old pack) is rewritten as a reference delta naming the base by id: the header
changes, the compressed delta data is copied unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import zlib
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from gitstore.backend.packs import (
    Entry,
    PackWriter,
    check_pack_matches,
    entry_header,
    read_index,
)

__all__ = ["PackEntry", "PackFile", "read_pack", "remove_pack", "with_bases", "write_picked"]

_OFS_DELTA = 6
_REF_DELTA = 7
_CHUNK = 1 << 20
# Files git keeps beside a pack, removed with it (a bitmap or reverse index of a pack that is
# gone would mislead git).
_SIBLINGS = (".idx", ".pack", ".rev", ".bitmap", ".mtimes", ".promisor")


@dataclasses.dataclass(frozen=True)
class PackEntry:
    """One entry of a pack: where it is, how long it is and what it is."""

    offset: int
    stop: int  # offset of the next entry (or of the trailer)
    crc: int
    kind: int
    size: int  # the size in the entry's header (for a delta: of the delta data)
    head: int  # bytes of header before the compressed data (with a delta's base reference)
    base: bytes | None  # a delta's base id

    @property
    def length(self) -> int:
        """Bytes of the entry in its pack: what it costs on disk."""
        return self.stop - self.offset


@dataclasses.dataclass(frozen=True)
class PackFile:
    """A pack on disk, read through its index: ``base`` is its path without ``.pack``."""

    base: str
    entries: dict[bytes, PackEntry]
    mtime: float
    size: int  # bytes of .pack plus .idx

    @property
    def name(self) -> str:
        """``pack-<hash>``."""
        return os.path.basename(self.base)


def read_pack(base: str) -> PackFile:
    """Read pack ``base`` through its index; ValueError or OSError if either cannot be read.

    Every entry header is read (a few bytes each), not the entries themselves.
    """
    rows, pack_sha = read_index(base)
    with open(base + ".pack", "rb") as f:
        check_pack_matches(f, len(rows), pack_sha)
        st = os.fstat(f.fileno())
        end = st.st_size - 20
        by_offset = {off: sha for off, sha, _ in rows}
        entries: dict[bytes, PackEntry] = {}
        for i, (off, sha, crc) in enumerate(rows):
            stop = rows[i + 1][0] if i + 1 < len(rows) else end
            if not 12 <= off < stop <= end:
                raise ValueError(f"{base}.idx: entry {sha.hex()} lies outside the pack")
            f.seek(off)
            kind, size, head, base_ref = _parse_header(f.read(min(64, stop - off)))
            if kind == _OFS_DELTA:
                assert isinstance(base_ref, int)
                base_sha = by_offset.get(off - base_ref)
                if base_sha is None:
                    raise ValueError(f"{base}.pack: delta {sha.hex()} has no base entry")
                entries[sha] = PackEntry(off, stop, crc, kind, size, head, base_sha)
            else:
                assert base_ref is None or isinstance(base_ref, bytes)
                entries[sha] = PackEntry(off, stop, crc, kind, size, head, base_ref)
    idx_size = os.stat(base + ".idx").st_size
    return PackFile(base, entries, st.st_mtime, st.st_size + idx_size)


def _parse_header(data: bytes) -> tuple[int, int, int, int | bytes | None]:
    """(kind, size, header length, base) of an entry starting ``data``; base is the backward
    distance of an offset delta, the id of a reference delta, else None."""
    try:
        byte = data[0]
        kind, size, shift, i = (byte >> 4) & 7, byte & 15, 4, 1
        while byte & 0x80:
            byte = data[i]
            size |= (byte & 0x7F) << shift
            shift += 7
            i += 1
        if kind == _OFS_DELTA:
            byte = data[i]
            i += 1
            dist = byte & 0x7F
            while byte & 0x80:
                byte = data[i]
                i += 1
                dist = ((dist + 1) << 7) | (byte & 0x7F)
            return kind, size, i, dist
        if kind == _REF_DELTA:
            if len(data) < i + 20:
                raise ValueError("reference delta cut short")
            return kind, size, i + 20, data[i : i + 20]
    except IndexError:
        raise ValueError("entry header cut short") from None
    if kind not in (1, 2, 3, 4):
        raise ValueError(f"entry of unknown kind {kind}")
    return kind, size, i, None


def with_bases(
    pack: PackFile, picked: Iterable[bytes], whole: frozenset[bytes] = frozenset()
) -> set[bytes]:
    """``picked`` and the delta bases (in ``pack``, transitively) they need; entries in
    ``whole`` are to be written whole (see :func:`write_picked`) and need no base.

    ValueError if a delta's base is not in the pack (a thin pack: not something to rewrite).
    """
    out: set[bytes] = set()
    todo = list(picked)
    while todo:
        sha = todo.pop()
        if sha in out:
            continue
        out.add(sha)
        base = pack.entries[sha].base
        if base is not None and sha not in whole:
            if base not in pack.entries:
                raise ValueError(f"{pack.base}.pack: delta {sha.hex()} has its base elsewhere")
            todo.append(base)
    return out


class _CopyWriter(PackWriter):
    """A pack writer that copies entries from other packs in chunks."""

    def copy(self, f: BinaryIO, entry: PackEntry, sha: bytes, where: str) -> None:
        """Append ``entry`` (of the open pack ``f``) byte for byte, an offset delta rewritten
        as a reference delta; ValueError if its bytes fail the CRC of its index."""
        start = self.offset
        f.seek(entry.offset)
        head = f.read(entry.head)
        crc_in = zlib.crc32(head)
        if entry.kind == _OFS_DELTA:
            assert entry.base is not None
            head = entry_header(_REF_DELTA, entry.size) + entry.base
        crc_out = zlib.crc32(head)
        self._write(head)
        left = entry.stop - entry.offset - entry.head
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise ValueError(f"{where}: entry {sha.hex()} is cut short")
            left -= len(chunk)
            crc_in = zlib.crc32(chunk, crc_in)
            crc_out = zlib.crc32(chunk, crc_out)
            self._write(chunk)
        if crc_in != entry.crc:
            raise ValueError(f"{where}: entry {sha.hex()} fails its CRC")
        self.rows.append((sha, crc_out, start))


def write_picked(
    pack_dir: str,
    picks: Sequence[tuple[PackFile, bytes]],
    *,
    fsync: bool,
    mtime: float | None = None,
    whole: Sequence[Entry] = (),
) -> str:
    """Write one pack holding entry ``sha`` of ``pack`` for each pick, then the ready-made
    entries ``whole`` (deltas whose base is being removed, resolved and compressed anew);
    return its path.

    Each pick's delta base must be picked too (see :func:`with_bases`). ``mtime`` sets the new
    pack's (and index's) modification time, which gc reads as the age of the unreachable objects
    in it. A failure removes what was written and raises (ValueError for a damaged entry).
    """
    writer = _CopyWriter(pack_dir, len(picks) + len(whole), fsync=fsync)
    try:
        by_pack: dict[str, list[tuple[PackEntry, bytes]]] = {}
        for pack, sha in picks:
            by_pack.setdefault(pack.base, []).append((pack.entries[sha], sha))
        for e in whole:
            writer.add(e.sha, e.data, e.crc)
        for base, entries in by_pack.items():
            with open(base + ".pack", "rb") as f:
                for entry, sha in sorted(entries, key=lambda e: e[0].offset):
                    writer.copy(f, entry, sha, os.path.basename(base) + ".pack")
    except BaseException:
        writer.abort()
        raise
    path = writer.finish()
    if mtime is not None:
        for ext in (".pack", ".idx"):
            os.utime(path[:-5] + ext, (mtime, mtime))
    return path


def remove_pack(base: str) -> None:
    """Remove pack ``base`` and the files git keeps beside it; the index first, so that no
    reader picks up a half-removed pack."""
    for ext in _SIBLINGS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(base + ext)
