"""Fast lookups in one pack's index, and whole small entries read in one call.

dulwich looks an object up in a ``.idx`` by a binary search whose every step is a Python call
(~15 µs a pack), and a lookup asks pack after pack, so a read of every version of a 100k-task
store (seven packs, four objects a version) spent most of its 55 s there. :class:`PackIndex`
holds the index's bytes and answers in two ways:

* narrowed by the fanout table, then bisected inline over the sorted ids (a few µs): what a
  command that reads a handful of objects pays, with nothing built;
* once a pack has been asked about more often than an eighth of its object count, from a dict of
  id -> offset built in one pass (~0.4 µs an object to build, ~0.25 µs a lookup, ~140 bytes an
  object): the cost of building it is then at most what the searches so far cost, so a
  whole-store read pays at most about twice the best of the two, and a small read never builds it.


:meth:`PackIndex.read` reads a whole non-delta entry with one ``pread`` (two for one of more
than about 1 KiB) and one inflate. It returns None for what it does not handle (a delta, a
stream longer than zlib's bound, anything that does not inflate to the size its header says),
and the caller reads that entry the slow way, which also says what is wrong with a damaged one.
No mmap: a pack truncated under a reader would kill the process with SIGBUS instead of raising.
"""

from __future__ import annotations

import os
import struct
import zlib
from hashlib import sha1
from typing import Literal

__all__ = ["ENTRY_HEADER_MAX", "PackIndex", "entry_header"]

_MAGIC = b"\xfftOc\x00\x00\x00\x02"
_SHAS_AT = 8 + 256 * 4
_KIND_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_OFS_DELTA = 6
_REF_DELTA = 7
# Longest entry header: type and a 64-bit size, 7 bits a byte.
ENTRY_HEADER_MAX = 10
# First read of an entry: its header and, for most commits, trees and manifests, all of it.
_FIRST_READ = 1024


class PackIndex:
    """The version-2 index of pack ``base`` (its path without ``.idx``), read whole.

    Raises OSError if the file cannot be read, ValueError if it is no version-2 index or is
    shorter than the entries it promises. Lookups in an index damaged otherwise give wrong
    offsets, which reading then reports (the object read does not hash to its id).
    """

    def __init__(self, base: str) -> None:
        self.base = base
        with open(base + ".idx", "rb") as f:
            idx = f.read()
        if idx[:8] != _MAGIC or len(idx) < _SHAS_AT + 40:
            raise ValueError("not a version-2 pack index")
        fanout = struct.unpack_from(">256I", idx, 8)
        n = fanout[255]
        self.count = n
        self._crcs_at = _SHAS_AT + 20 * n
        self._offsets_at = self._crcs_at + 4 * n
        self._large_at = self._offsets_at + 4 * n
        if len(idx) < self._large_at + 40:
            raise ValueError(f"shorter than its {n} entries")
        #: The hash of the pack this index was made for (the pack's trailer).
        self.pack_sha = idx[-40:-20]
        self._idx = idx
        # fanout[b] .. fanout[b + 1]: the ids whose first byte is b (clamped: a damaged table
        # must not send a search outside the id table).
        self._fanout = (0, *(min(x, n) for x in fanout))
        self._asked = 0
        self._promote_at = n // 8 + 64
        self._dict: dict[bytes, int] | None = None
        self._fd = -1

    def offset(self, sha: bytes) -> int | None:
        """Where object ``sha`` (20 raw bytes) starts in the pack; None if it is not in it."""
        d = self._dict
        if d is not None:
            return d.get(sha)
        self._asked += 1
        if self._asked > self._promote_at:
            d = self._dict = self._build()
            return d.get(sha)
        idx = self._idx
        b = sha[0]
        lo = self._fanout[b]
        hi = self._fanout[b + 1]
        while lo < hi:
            mid = (lo + hi) >> 1
            at = _SHAS_AT + 20 * mid
            found = idx[at : at + 20]
            if found < sha:
                lo = mid + 1
            elif found > sha:
                hi = mid
            else:
                return self._offset_of(mid)
        return None

    def _offset_of(self, i: int) -> int:
        off: int = struct.unpack_from(">I", self._idx, self._offsets_at + 4 * i)[0]
        if off & 0x80000000:
            off = struct.unpack_from(">Q", self._idx, self._large_at + 8 * (off & 0x7FFFFFFF))[0]
        return off

    def _build(self) -> dict[bytes, int]:
        idx, n = self._idx, self.count
        keys = [idx[at : at + 20] for at in range(_SHAS_AT, _SHAS_AT + 20 * n, 20)]
        offsets: list[int] | tuple[int, ...] = struct.unpack_from(f">{n}I", idx, self._offsets_at)
        if n and max(offsets) & 0x80000000:
            offsets = [self._offset_of(i) for i in range(n)]
        return dict(zip(keys, offsets, strict=True))

    def whole(self, sha: bytes) -> tuple[int, bytes] | Literal[False] | None:
        """(type number, bytes) of object ``sha`` if the pack holds it as a whole entry whose
        bytes hash to ``sha``; False if the pack does not hold it; None if it does, but not so
        (a delta, or damage: the caller reads it the careful way, which says what is wrong).
        Raises OSError if the pack cannot be read, ValueError or struct.error if the index is
        damaged.

        :meth:`offset`, :meth:`read` and the SHA-1 check in one call: what a whole-store read
        pays for each of its hundreds of thousands of objects.
        """
        d = self._dict
        offset = d.get(sha) if d is not None else self.offset(sha)
        if offset is None:
            return False
        found = self.read(offset)
        if found is None:
            return None
        kind, raw = found
        if sha1(b"%s %d\0%s" % (_KIND_NAMES[kind], len(raw), raw)).digest() != sha:
            return None
        return found

    def read(self, offset: int) -> tuple[int, bytes] | None:
        """(type number, bytes) of the whole non-delta entry at ``offset``, or None (see the
        module's docstring). Raises OSError if the pack cannot be read."""
        if self._fd < 0:
            self._fd = os.open(self.base + ".pack", os.O_RDONLY | os.O_CLOEXEC)
        head = os.pread(self._fd, _FIRST_READ, offset)
        parsed = entry_header(head)
        if parsed is None:
            return None
        at, size, kind = parsed
        if kind in (_OFS_DELTA, _REF_DELTA) or not 1 <= kind <= 4:
            return None
        # zlib's compressBound: no stream zlib writes for ``size`` bytes is longer.
        bound = size + (size >> 12) + (size >> 14) + (size >> 25) + 13
        data = head[at:] if at + bound <= len(head) else os.pread(self._fd, bound, offset + at)
        try:
            raw = zlib.decompress(data)
        except zlib.error:
            return None  # longer than the bound (another deflater), or damaged: the slow way
        if len(raw) != size:
            return None
        return kind, raw

    def close(self) -> None:
        """Close the pack file if :meth:`read` opened it."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def entry_header(data: bytes) -> tuple[int, int, int] | None:
    """(header length, size, type number) of the pack entry ``data`` starts with; None when the
    header runs past ``data`` or past :data:`ENTRY_HEADER_MAX` bytes (damage: no size needs
    more than 64 bits)."""
    if not data:
        return None
    byte = data[0]
    kind = (byte >> 4) & 7
    size = byte & 15
    shift = 4
    at = 1
    while byte & 0x80:
        if at >= ENTRY_HEADER_MAX or at >= len(data):
            return None
        byte = data[at]
        at += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    return at, size, kind
