"""Objects read in bulk for a big transfer: every pack entry by id, copied raw or inflated once.

A first push sends every object of the tasks it pushes. Looking each one up through dulwich (a
binary search in every pack's index), inflating it, parsing it into an object and deflating it
again costs ~0.5 ms an object; git's own pack-objects copies the entries of its packs as they
are. :class:`PackMap` does the same for gitstore's packs: it reads every pack index once into
one dict, walks commits and trees from the raw entries (inflated with zlib, parsed without
building objects) and hands each entry to the pack being sent byte for byte, its CRC-32 checked
against the index on the way (damage on disk is refused here rather than sent).

What is not a plain pack entry is read through :class:`~gitstore.backend.objects.DiskObjects` as
before: loose objects (big blobs are streamed and deflated once, at level 1, never held whole)
and deltified entries (which gitstore never writes, but ``git gc`` may).

Building the map reads every index of the store: worth it for a push of many objects, not for a
push of a few in a big store, which looks objects up one by one as before.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.pack import UnpackedObject

from gitstore import _zlib
from gitstore.backend.objects import (
    CHUNK,
    BlobInfo,
    BlobReader,
    DiskObjects,
    Progress,
    RawObject,
)
from gitstore.backend.packindex import ENTRY_HEADER_MAX, entry_header
from gitstore.errors import IntegrityError

__all__ = ["COMMIT", "TREE", "BLOB", "PackMap"]

COMMIT, TREE, BLOB = 1, 2, 3
_KINDS = {COMMIT: Commit, TREE: Tree, BLOB: Blob}
_TYPE_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}
# Packs up to this size are mapped whole; bigger ones are read entry by entry.
_MAP_WHOLE = 64 << 20
# Small entries sent in one write, up to this many bytes (see PackMap.records): a pipe's worth,
# so that the receiving index-pack reads one batch while the next is gathered (1 MiB held a
# first push's whole pack until it was gathered, then the receiver started).
_BATCH_BYTES = 1 << 16
# Entries above this size are copied in chunks, never held whole.
_BIG_ENTRY = 4 << 20
_MODE_TREE = 0o040000
_HEX40 = re.compile(rb"[0-9a-f]{40}")
_MODE_GITLINK = 0o160000


class _Pack:
    """One pack: its path, its bytes (small packs) or an open file (big ones), its length."""

    def __init__(self, path: str, data: mmap.mmap | None, fd: int, size: int) -> None:
        self.path = path
        self.data = data
        self.fd = fd
        self.size = size

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        return os.pread(self.fd, end - start, start)


class PackMap:
    """Every full (non-delta) entry of the store's packs by binary id: (pack, start, end, CRC).

    Args:
      objects: the store's objects, for whatever is not a plain pack entry.
    """

    def __init__(self, objects: DiskObjects) -> None:
        self.objects = objects
        self._packs: list[_Pack] = []
        self._entries: dict[bytes, tuple[int, int, int, int]] = {}
        # Commits and trees parsed once: a push walks them to scan, then again to send.
        self._commits: dict[str, tuple[str, list[str]]] = {}
        self._trees: dict[str, list[tuple[bytes, int, str]]] = {}
        try:
            names = sorted(os.listdir(objects.pack_dir))
        except FileNotFoundError:
            names = []
        for name in names:
            if name.endswith(".idx") and name[:-4] + ".pack" in names:
                # A pack merged away or damaged meanwhile: its objects are read the slow way.
                with contextlib.suppress(OSError, ValueError, struct.error):
                    self._add(os.path.join(objects.pack_dir, name[:-4]))

    def close(self) -> None:
        """Close the files of big packs (the store's objects stay open)."""
        for p in self._packs:
            if p.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(p.fd)
            if p.data is not None:
                with contextlib.suppress(BufferError):
                    p.data.close()
        self._packs.clear()

    def __enter__(self) -> PackMap:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _add(self, base: str) -> None:
        with open(base + ".idx", "rb") as f:
            idx = f.read()
        if idx[:8] != b"\xfftOc\x00\x00\x00\x02":
            raise ValueError("not a version-2 index")
        n = struct.unpack_from(">I", idx, 8 + 255 * 4)[0]
        names_at = 8 + 1024
        crcs_at = names_at + 20 * n
        offs_at = crcs_at + 4 * n
        crcs = struct.unpack_from(f">{n}I", idx, crcs_at)
        offs = list(struct.unpack_from(f">{n}I", idx, offs_at))
        large_at = offs_at + 4 * n
        for i, off in enumerate(offs):
            if off & 0x80000000:
                offs[i] = struct.unpack_from(">Q", idx, large_at + 8 * (off & 0x7FFFFFFF))[0]
        fd = os.open(base + ".pack", os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            data = None
            if 0 < size <= _MAP_WHOLE:
                # Mapped, not read: the pages are the page cache's, not this process's heap.
                data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                os.close(fd)
                fd = -1
            magic = data[:4] if data is not None else os.pread(fd, 4, 0)
            if magic != b"PACK":
                raise ValueError("not a pack")
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        number = len(self._packs)
        self._packs.append(_Pack(base + ".pack", data, fd, size))
        order = sorted(range(n), key=offs.__getitem__)
        ends = [0] * n
        for k, i in enumerate(order):
            ends[i] = offs[order[k + 1]] if k + 1 < n else size - 20
        entries = self._entries
        for i in range(n):
            sha = idx[names_at + 20 * i : names_at + 20 * i + 20]
            entries.setdefault(sha, (number, offs[i], ends[i], crcs[i]))

    # -- reading ---------------------------------------------------------------------------

    def _entry(self, sha: bytes) -> tuple[int, int, _Pack, int, int, int] | None:
        """(kind, size, pack, start, data start, end) of a full entry; None: read elsewhere."""
        found = self._entries.get(sha)
        if found is None:
            return None
        number, start, end, _ = found
        pack = self._packs[number]
        head = pack.read(start, min(start + ENTRY_HEADER_MAX, end))
        if not head or (head[0] >> 4) & 7 not in _KINDS:
            return None  # a delta (dulwich resolves it), or damage dulwich reports
        parsed = entry_header(head)
        if parsed is None:
            raise self._damaged(sha, pack, "entry header runs past its end")
        pos, size, kind = parsed
        return kind, size, pack, start, start + pos, end

    def _damaged(self, sha: bytes, pack: _Pack, why: str) -> IntegrityError:
        where = os.path.relpath(pack.path, os.path.dirname(self.objects.path))
        return IntegrityError(f"object {sha.hex()} cannot be read: {where}: {why}")

    def read(self, oid: str) -> tuple[int, bytes]:
        """(kind, bytes) of object ``oid``, whole (for commits, trees and small blobs)."""
        sha = bytes.fromhex(oid)
        found = self._entry(sha)
        if found is None:
            obj = self.objects.get(oid)
            return obj.type_num, obj.as_raw_string()
        return found[0], self._inflate(sha, found)

    def read_small(self, oid: str, limit: int) -> tuple[int, bytes] | None:
        """(kind, bytes) of object ``oid`` if it is a plain pack entry of fewer than ``limit``
        bytes; None otherwise (read it elsewhere). One lookup, where :meth:`size` then
        :meth:`read` make two."""
        sha = bytes.fromhex(oid)
        found = self._entry(sha)
        if found is None or found[1] >= limit:
            return None
        return found[0], self._inflate(sha, found)

    def _inflate(self, sha: bytes, found: tuple[int, int, _Pack, int, int, int]) -> bytes:
        _, size, pack, _, at, end = found
        try:
            body = zlib.decompress(pack.read(at, end))
        except zlib.error as e:
            raise self._damaged(sha, pack, f"entry does not inflate ({e})") from None
        if len(body) != size:
            raise self._damaged(sha, pack, "entry is not the size its header says")
        return body

    def size(self, oid: str) -> int | None:
        """The size of object ``oid`` if it is a plain pack entry (None: read it elsewhere)."""
        found = self._entry(bytes.fromhex(oid))
        return None if found is None else found[1]

    def stored_size(self, oid: str) -> int:
        """Bytes object ``oid`` takes on disk (its pack entry, or its loose file; 0 if neither).

        What sending it costs when its entry is reused as it is: a push's expected pack size.
        """
        found = self._entries.get(bytes.fromhex(oid))
        if found is not None:
            return found[2] - found[1]
        loose = os.path.join(os.path.dirname(self.objects.pack_dir), oid[:2], oid[2:])
        try:
            return os.stat(loose).st_size
        except OSError:
            return 0

    def get(self, oid: str) -> ShaFile:
        """Object ``oid`` parsed (the :class:`~gitstore.backend.objects.ObjectBackend` call)."""
        kind, body = self.read(oid)
        obj = _KINDS[kind]()
        obj.set_raw_string(body, ObjectID(oid.encode()))
        return obj

    # Writes go to the store's objects as they are: a map is an ObjectBackend for readers.

    def add_blob(self, data: bytes) -> BlobInfo:
        """:meth:`DiskObjects.add_blob` (the map does not see it)."""
        return self.objects.add_blob(data)

    def add_blob_stream(
        self, f: BinaryIO, size: int, name: str, progress: Progress | None = None
    ) -> BlobInfo:
        """:meth:`DiskObjects.add_blob_stream` (the map does not see it)."""
        return self.objects.add_blob_stream(f, size, name, progress)

    def add_objects(self, objects: Sequence[ShaFile]) -> None:
        """:meth:`DiskObjects.add_objects` (the map does not see them)."""
        self.objects.add_objects(objects)

    def get_raw(self, oid: str) -> tuple[str, bytes]:
        """Kind (``commit``, ``tree``, ``blob``, ``tag``) and bytes of object ``oid``."""
        obj = self.get(oid)
        return obj.type_name.decode(), obj.as_raw_string()

    def add_raw(self, objects: Sequence[RawObject]) -> None:
        """:meth:`DiskObjects.add_raw` (the map does not see them)."""
        self.objects.add_raw(objects)

    def has(self, oid: str) -> bool:
        """Is ``oid`` in the store?"""
        return bytes.fromhex(oid) in self._entries or self.objects.has(oid)

    def open_blob(self, oid: str, expect_sha256: str | None = None) -> BlobReader:
        """A stream over blob ``oid`` (small packed ones inflated at once)."""
        found = self._entry(bytes.fromhex(oid))
        if found is None or found[1] > _BIG_ENTRY or found[0] != BLOB:
            return self.objects.open_blob(oid, expect_sha256)
        _, body = self.read(oid)
        return BlobReader(oid, len(body), [body], expect_sha256=expect_sha256)

    # -- walking ---------------------------------------------------------------------------

    def missing(self, wants: Iterable[str], haves: Iterable[str]) -> list[tuple[str, int]]:
        """(id, kind) of every object ``wants`` reach that ``haves`` do not: what to send.

        Commits first (newest first), then trees and blobs as the walk meets them.
        """
        have_commits: set[str] = set()
        have_objects: set[str] = set()
        todo = [h for h in haves]
        while todo:
            c = todo.pop()
            if c in have_commits:
                continue
            have_commits.add(c)
            tree, parents = self._commit(c)
            todo += parents
            self._walk_trees(tree, have_objects, None)
        out: list[tuple[str, int]] = []
        seen = set(have_commits)
        commits = []
        todo = [w for w in wants]
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            tree, parents = self._commit(c)
            commits.append((c, tree))
            todo += parents
        out += [(c, COMMIT) for c, _ in commits]
        for _, tree in commits:
            self._walk_trees(tree, have_objects, out)
        return out

    def commits(self, wants: Iterable[str], stop: set[str]) -> list[str]:
        """Every commit ``wants`` reach short of those in ``stop`` (themselves excluded)."""
        out: list[str] = []
        seen = set(stop)
        todo = list(wants)
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            out.append(c)
            todo += self._commit(c)[1]
        return out

    def _commit(self, oid: str) -> tuple[str, list[str]]:
        found = self._commits.get(oid)
        if found is None:
            found = self._commits[oid] = self._parse_commit(oid)
        return found

    def _parse_commit(self, oid: str) -> tuple[str, list[str]]:
        kind, body = self.read(oid)
        if kind != COMMIT:
            raise IntegrityError(f"object {oid} is a {_TYPE_NAMES[kind].decode()}, not a commit")
        head = body.split(b"\n\n", 1)[0]
        tree = b""
        parents = []
        for line in head.split(b"\n"):
            if line.startswith(b"tree "):
                tree = line[5:]
            elif line.startswith(b"parent "):
                parents.append(line[7:])
        if not all(_HEX40.fullmatch(x) for x in (tree, *parents)):
            raise IntegrityError(f"commit {oid} is damaged (its tree or a parent is no id)")
        return tree.decode(), [p.decode() for p in parents]

    def tree_items(self, oid: str) -> list[tuple[bytes, int, str]]:
        """(name, mode, id) of each entry of tree ``oid``, in stored order."""
        found = self._trees.get(oid)
        if found is None:
            found = self._trees[oid] = self._parse_tree(oid)
        return found

    def _parse_tree(self, oid: str) -> list[tuple[bytes, int, str]]:
        kind, body = self.read(oid)
        if kind != TREE:
            raise IntegrityError(f"object {oid} is a {_TYPE_NAMES[kind].decode()}, not a tree")
        items = []
        pos = 0
        n = len(body)
        try:
            while pos < n:
                space = body.index(b" ", pos)
                nul = body.index(b"\0", space)
                sha = body[nul + 1 : nul + 21]
                if len(sha) != 20:
                    raise ValueError
                items.append((body[space + 1 : nul], int(body[pos:space], 8), sha.hex()))
                pos = nul + 21
        except ValueError:
            raise IntegrityError(f"tree {oid} is damaged") from None
        return items

    def _walk_trees(self, root: str, seen: set[str], out: list[tuple[str, int]] | None) -> None:
        todo = [root]
        while todo:
            tree = todo.pop()
            if tree in seen:
                continue
            seen.add(tree)
            if out is not None:
                out.append((tree, TREE))
            for _, mode, oid in self.tree_items(tree):
                if mode == _MODE_TREE:
                    todo.append(oid)
                elif mode != _MODE_GITLINK and oid not in seen:
                    seen.add(oid)
                    if out is not None:
                        out.append((oid, BLOB))

    # -- sending ---------------------------------------------------------------------------

    def records(self, ids: Sequence[tuple[str, int]]) -> Iterator[UnpackedObject]:
        """Pack records of ``ids``: plain entries as they are (CRC checked), the rest rebuilt.

        Small entries go out in batches of up to :data:`_BATCH_BYTES`: the first record of a
        batch carries the bytes of every entry in it and the others carry none. dulwich's pack
        writer writes each record's chunks in order and counts records, so the stream is the
        same, written in one pipe write per batch instead of one per object (a pipe write
        wakes the receiving index-pack each time). Nothing refers back to an entry's offset:
        no delta is sent.
        """
        batch: list[UnpackedObject] = []
        held: list[bytes] = []
        size = 0
        entries = self._entries
        packs = self._packs
        crc32 = zlib.crc32
        # One lookup, one slice and one CRC per small entry: this loop runs once per object
        # of a first push, so the header is parsed here rather than through _entry.
        for oid, kind in ids:
            sha = bytes.fromhex(oid)
            found = entries.get(sha)
            if found is not None and found[2] - found[1] <= _BIG_ENTRY:
                number, start, end, crc = found
                pack = packs[number]
                data = pack.data[start:end] if pack.data is not None else pack.read(start, end)
                ekind = (data[0] >> 4) & 7 if data else 0
                if ekind in _KINDS:
                    # As _entry reads it: a header longer than ENTRY_HEADER_MAX is damage.
                    parsed = entry_header(data[:ENTRY_HEADER_MAX])
                    if parsed is None:
                        raise self._damaged(sha, pack, "entry header runs past its end")
                    length = parsed[1]
                    if crc32(data) != crc:
                        raise self._damaged(sha, pack, "entry fails its CRC")
                    rec = UnpackedObject(ekind, decomp_len=length, crc32=crc, sha=sha)
                    rec.comp_chunks = []
                    batch.append(rec)
                    held.append(data)
                    size += len(data)
                    if size >= _BATCH_BYTES:
                        yield from _flush(batch, held)
                        size = 0
                    continue
            yield from _flush(batch, held)
            size = 0
            big = self._entry(sha)
            if big is not None:
                ekind, length, pack, start, _, end = big
                crc = entries[sha][3]
                rec = UnpackedObject(ekind, decomp_len=length, crc32=crc, sha=sha)
                rec.comp_chunks = self._copy(sha, pack, start, end, crc)  # type: ignore[assignment]
                yield rec
            elif kind == BLOB:
                yield self._loose_blob(oid, sha)
            else:
                obj = self.objects.get(oid)
                yield UnpackedObject(obj.type_num, decomp_chunks=obj.as_raw_chunks(), sha=sha)
        yield from _flush(batch, held)

    def _copy(self, sha: bytes, pack: _Pack, start: int, end: int, crc: int) -> Iterator[bytes]:
        """A big entry's bytes in chunks, its CRC checked before the last chunk goes out."""
        got = 0
        pos = start
        while pos < end:
            chunk = pack.read(pos, min(end, pos + CHUNK))
            if not chunk:
                raise self._damaged(sha, pack, "truncated")
            got = zlib.crc32(chunk, got)
            pos += len(chunk)
            if pos >= end and got != crc:
                raise self._damaged(sha, pack, "entry fails its CRC")
            yield chunk

    def _loose_blob(self, oid: str, sha: bytes) -> UnpackedObject:
        reader = self.objects.open_blob(oid)
        rec = UnpackedObject(BLOB, decomp_len=reader.size, sha=sha)
        rec.comp_chunks = _deflated(reader)  # type: ignore[assignment]
        return rec


def _flush(batch: list[UnpackedObject], held: list[bytes]) -> Iterator[UnpackedObject]:
    """The batched records, the first carrying every entry's bytes (see PackMap.records)."""
    if batch:
        batch[0].comp_chunks = [b"".join(held)]
        yield from batch
        batch.clear()
        held.clear()


def _deflated(reader: BlobReader) -> Iterator[bytes]:
    """A blob's pack entry (header, then its bytes deflated once at level 1), chunk by chunk."""
    with reader:
        out = bytearray()
        byte = (BLOB << 4) | (reader.size & 0x0F)
        size = reader.size >> 4
        while size:
            out.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        out.append(byte)
        yield bytes(out)
        comp = _zlib.compressobj(1)
        for chunk in reader.iter_chunks():
            data = comp.compress(chunk)
            if data:
                yield data
        yield comp.flush()
