"""The object layer: Git objects in and out, with big blobs streamed both ways.

dulwich has no streaming API for large blobs (``add_object`` and ``get_raw`` hold whole objects in
memory), so this module writes and reads the loose-object format itself where size matters:

* writing a file: a first pass hashes (SHA-1 for the Git id and SHA-256 for the manifest, in two
  threads) and stops there when the blob already exists, so a re-put costs hashing only; a second
  pass compresses in chunks into ``objects/tmp_obj_*`` (the name git's own prune cleans), checks
  that the bytes still hash to the same id, and renames the file into place. Content that does not
  compress is written as stored zlib blocks (level 0) instead of paying ~40 MB/s for nothing, and
  as a pack of one entry rather than a loose object, so that transfers copy its bytes as they
  are (see :mod:`gitstore.backend.blobpack`).
* reading: loose objects and non-delta pack entries are inflated in chunks; only a deltified pack
  entry (which gitstore never writes, but ``git gc`` may) is resolved whole by dulwich. Whatever
  is wrong with the files on disk (a pack that does not match its index, an entry or loose file
  that does not inflate, a file that cannot be opened) surfaces as
  :class:`~gitstore.errors.IntegrityError` naming the object and the file, never as a dulwich,
  zlib or struct exception; another copy of the object, in another pack or loose, is used first.

Small objects (trees, commits, manifests, small blobs) of one put are written as ONE pack (see
:mod:`gitstore.backend.packs`): two files instead of one per object. Memory stays bounded by the
chunk size whatever the blob.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import io
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, Literal, NamedTuple, Protocol, TypeVar

from dulwich.errors import ApplyDeltaError, ChecksumMismatch, FileFormatException
from dulwich.object_store import DiskObjectStore, MemoryObjectStore
from dulwich.objects import Blob, ObjectID, RawObjectID, ShaFile
from dulwich.pack import Pack, PackFileDisappeared

from gitstore import _zlib
from gitstore._fs import fsync_dir, write_all
from gitstore.backend.blobpack import BlobPackWriter
from gitstore.backend.packindex import ENTRY_HEADER_MAX, PackIndex, entry_header
from gitstore.backend.packs import (
    MERGE_AT,
    Entry,
    count_small_packs,
    entry_for,
    merge_small_packs,
    raw_entry,
    write_pack,
)
from gitstore.errors import InputError, IntegrityError

__all__ = [
    "CHUNK",
    "BlobInfo",
    "BlobReader",
    "DiskObjects",
    "MemoryObjects",
    "ObjectBackend",
    "Progress",
    "RawObject",
    "hash_bytes",
    "small_blobs",
    "read_raw_many",
]

CHUNK = 1 << 20
# Blobs at most this size are handled in memory; larger ones are streamed.
SMALL_BLOB = 1 << 20
# Flush a pack of small objects once this many bytes have gathered, to bound memory.
PACK_FLUSH_BYTES = 32 << 20
# Blobs smaller than this are packed without asking whether they exist: a duplicate costs a few
# bytes, which the next merge drops, while asking costs a lookup in every pack.
DEDUP_MIN = 4096
# Above this compressed/original ratio on a sample, content is stored uncompressed (zlib level 0).
INCOMPRESSIBLE = 0.9
SAMPLE = 64 << 10

Progress = Callable[[int], None]

_PACK_BLOB = 3
_KIND_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_KIND_TEXT = {k: v.decode() for k, v in _KIND_NAMES.items()}
_PACK_OFS_DELTA = 6
_PACK_REF_DELTA = 7

# What reading damaged files raises, from dulwich or from struct and zlib beneath it. A missing
# file is not damage (FileNotFoundError: absent, or merged away meanwhile: look again); any other
# OSError is, as far as the object is concerned: a permission, a folder where a file should be, an
# I/O error all mean that it cannot be read.
_DAMAGE: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    AssertionError,
    IndexError,
    EOFError,
    struct.error,
    ChecksumMismatch,
    ApplyDeltaError,
    FileFormatException,
    *_zlib.ERRORS,
)

_T = TypeVar("_T")


class RawObject(NamedTuple):
    """An object as raw bytes: its pack type number (1 commit, 2 tree, 3 blob), its canonical
    bytes (no ``<kind> <size>`` header) and its binary id."""

    kind: int
    raw: bytes
    sha: bytes


class BlobInfo(NamedTuple):
    """What a put learns about one blob: its Git id, its SHA-256 and its size."""

    oid: str
    sha256: str
    size: int


def hash_bytes(data: bytes) -> BlobInfo:
    """Git blob id, SHA-256 and size of in-memory bytes."""
    sha1 = hashlib.sha1(b"blob %d\0" % len(data))
    sha1.update(data)
    return BlobInfo(sha1.hexdigest(), hashlib.sha256(data).hexdigest(), len(data))


class BlobReader(io.RawIOBase):
    """A readable stream over one blob's bytes that never holds the whole blob.

    With ``expect_sha256`` it recomputes the digest while reading and raises
    :class:`~gitstore.errors.IntegrityError` at the end if the bytes do not match.
    """

    def __init__(
        self,
        oid: str,
        size: int,
        chunks: Iterable[bytes],
        closer: Callable[[], None] | None = None,
        expect_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self.oid = oid
        self.size = size
        self._chunks = iter(chunks)
        self._closer = closer
        self._buf = b""
        self._pos = 0
        self._seen = 0
        self._expect = expect_sha256
        self._sha = hashlib.sha256() if expect_sha256 else None

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        for chunk in self._chunks:
            if chunk:
                self._seen += len(chunk)
                if self._sha is not None:
                    self._sha.update(chunk)
                return chunk
        self._finish()
        return b""

    def _finish(self) -> None:
        if self._seen != self.size:
            raise IntegrityError(
                f"object {self.oid}: read {self._seen} bytes, its header says {self.size}"
            )
        if self._sha is not None and self._sha.hexdigest() != self._expect:
            self._sha = None
            raise IntegrityError(
                f"object {self.oid}: sha256 does not match the manifest (expected {self._expect})"
            )
        self._sha = None

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        if self._pos >= len(self._buf):
            self._buf = self._next()
            self._pos = 0
            if not self._buf:
                return 0
        n = min(len(view), len(self._buf) - self._pos)
        view[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._pos >= len(self._buf):
            self._buf = self._next()
            self._pos = 0
        out = self._buf[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def readall(self) -> bytes:
        parts = [self._buf[self._pos :]]
        self._buf, self._pos = b"", 0
        while chunk := self._next():
            parts.append(chunk)
        return b"".join(parts)

    def iter_chunks(self) -> Iterable[bytes]:
        """The remaining bytes, chunk by chunk as they are inflated."""
        if self._pos < len(self._buf):
            yield self._buf[self._pos :]
            self._buf, self._pos = b"", 0
        while chunk := self._next():
            yield chunk

    def close(self) -> None:
        if not self.closed and self._closer is not None:
            self._closer()
        super().close()


class ObjectBackend(Protocol):
    """What the store needs from an object database; disk and memory implement it alike."""

    def has(self, oid: str) -> bool: ...

    def add_blob(self, data: bytes) -> BlobInfo: ...

    def add_blob_stream(
        self, f: BinaryIO, size: int, name: str, progress: Progress | None = None
    ) -> BlobInfo: ...

    def add_objects(self, objects: Sequence[ShaFile]) -> None: ...

    def add_raw(self, objects: Sequence[RawObject]) -> None: ...

    def get(self, oid: str) -> ShaFile: ...

    def get_raw(self, oid: str) -> tuple[str, bytes]: ...

    def open_blob(self, oid: str, expect_sha256: str | None = None) -> BlobReader: ...

    def close(self) -> None: ...


class MemoryObjects:
    """Objects kept in a dulwich MemoryObjectStore: the in-memory twin of :class:`DiskObjects`."""

    def __init__(self) -> None:
        self.store = MemoryObjectStore()
        self._lock = threading.Lock()

    def has(self, oid: str) -> bool:
        with self._lock:
            return ObjectID(oid.encode()) in self.store

    def add_blob(self, data: bytes) -> BlobInfo:
        info = hash_bytes(data)
        with self._lock:
            if ObjectID(info.oid.encode()) not in self.store:
                self.store.add_object(Blob.from_string(data))
        return info

    def add_blob_stream(
        self, f: BinaryIO, size: int, name: str, progress: Progress | None = None
    ) -> BlobInfo:
        data = _read_exact(f, size, name, progress)
        return self.add_blob(data)

    def add_objects(self, objects: Sequence[ShaFile]) -> None:
        with self._lock:
            for obj in objects:
                self.store.add_object(obj)

    def add_raw(self, objects: Sequence[RawObject]) -> None:
        self.add_objects([ShaFile.from_raw_string(o.kind, o.raw) for o in objects])

    def get(self, oid: str) -> ShaFile:
        with self._lock:
            try:
                return self.store[ObjectID(oid.encode())]
            except KeyError:
                raise IntegrityError(f"object {oid} is missing from the store") from None

    def discard(self, oids: set[str]) -> int:
        """Forget objects ``oids`` (expunge, in memory); return how many were there."""
        with self._lock:
            kept = MemoryObjectStore()
            gone = 0
            for sha in self.store:
                if sha.decode() in oids:
                    gone += 1
                else:
                    kept.add_object(self.store[sha])
            self.store = kept
            return gone

    def get_raw(self, oid: str) -> tuple[str, bytes]:
        """Kind (``commit``, ``tree``, ``blob``, ``tag``) and bytes of object ``oid``."""
        obj = self.get(oid)
        return obj.type_name.decode(), obj.as_raw_string()

    def open_blob(self, oid: str, expect_sha256: str | None = None) -> BlobReader:
        obj = self.get(oid)
        if not isinstance(obj, Blob):
            raise IntegrityError(f"object {oid} is a {obj.type_name.decode()}, not a blob")
        data = obj.as_raw_string()
        chunks = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
        return BlobReader(oid, len(data), chunks, expect_sha256=expect_sha256)

    def close(self) -> None:
        pass


class DiskObjects:
    """Objects in ``<store>/objects``: loose files written by gitstore itself, packs via dulwich."""

    def __init__(self, objects_dir: str, *, fsync: bool, compression: int) -> None:
        self.path = objects_dir
        self.fsync = fsync
        self.compression = compression
        self.store = _PackCache(objects_dir)
        self.store.fsync_object_files = fsync
        self.store.pack_compression_level = compression
        # dulwich's pack cache is a plain dict mutated on lookups; one lock keeps threads apart.
        self._lock = threading.RLock()
        self._made_dirs: set[str] = set()
        self.pack_dir = os.path.join(objects_dir, "pack")
        self._pack_mtime: int | None = None
        self._racy_scan = False  # was the last listing of pack_dir too close to its change?
        # Small packs in the folder at this handle's last look (None: not looked yet), and
        # packs it wrote since (see _merge_when_due).
        self._small_packs: int | None = None
        self._packs_since_look = 0
        # Our own reader of each cached pack's index (dulwich's lookups cost ~15 µs a pack),
        # keyed by path, beside the dulwich Pack it was opened for.
        self._indexes: dict[str, tuple[Pack, PackIndex]] = {}
        self._last_hit: PackIndex | None = None

    # -- existence -------------------------------------------------------------------------

    def _loose_path(self, oid: str) -> str:
        return os.path.join(self.path, oid[:2], oid[2:])

    def has(self, oid: str) -> bool:
        path = self._loose_path(oid)
        try:
            # Freshen the mtime so an age-based prune running now cannot remove an object that a
            # ref is about to reach (git does the same).
            os.utime(path)
            return True
        except PermissionError:
            return True  # another user's object in a shared store: there, though not ours to touch
        except OSError:
            pass  # absent, or a path that is no object file: a write puts the object in place
        return self._packed(oid)

    def _packed(self, oid: str) -> bool:
        """Is ``oid`` in a pack that can be read? Rescans the pack folder only when its mtime moved.

        A damaged pack does not count: a put then writes the object again instead of pointing a
        new version at a copy nobody can read.
        """
        sha = RawObjectID(bytes.fromhex(oid))
        with self._lock:
            for _ in range(2):
                try:
                    mtime = os.stat(self.pack_dir).st_mtime_ns
                except FileNotFoundError:
                    return False
                if mtime != self._pack_mtime:
                    listed_at = time.time_ns()
                    self._rescan()
                    self._pack_mtime = mtime
                    # A folder listed within a clock tick of its last change can change again
                    # in that same tick without its mtime moving (another process's pack landing
                    # just after our listing): a miss then lists it again instead of trusting it.
                    self._racy_scan = listed_at - mtime < _RACY_PACK_DIR_NS
                try:
                    if any(
                        self._usable(base, pack, sha) for base, pack in self.store.cached_packs()
                    ):
                        return True
                except (PackFileDisappeared, FileNotFoundError):
                    self._pack_mtime = None
                    continue
                if not self._racy_scan:
                    return False
                self._pack_mtime = None
            return False

    def _usable(self, base: str, pack: Pack, sha: RawObjectID) -> bool:
        """Does ``pack`` hold ``sha``, and do its index and data open and match? (Under lock.)"""
        try:
            if self._index(base, pack).offset(sha) is None:
                return False
            _check_pack(pack)
            return True
        except (PackFileDisappeared, FileNotFoundError):
            raise
        except _DAMAGE:
            pass
        # Outside the except: its traceback still holds views of the pack's mmap.
        self._evict(pack)
        return False

    def _index(self, base: str, pack: Pack) -> PackIndex:
        """Our index of cached pack ``base``, read when first asked for (under lock).

        ValueError if it was made for other pack bytes than the ones dulwich checked.
        """
        known = self._indexes.get(base)
        if known is not None and known[0] is pack:
            return known[1]
        if known is not None:
            self._drop_index(base)
        index = PackIndex(base)
        if index.pack_sha != pack.index.get_pack_checksum():
            index.close()
            raise ValueError("its index changed while it was being read")
        self._indexes[base] = (pack, index)
        return index

    def _rescan(self) -> None:
        """Rescan the pack folder (under lock), forgetting our indexes of packs gone from it."""
        self.store.rescan()
        live = {base for base, _ in self.store.cached_packs()}
        for base in [b for b in self._indexes if b not in live]:
            self._drop_index(base)

    def _drop_index(self, base: str) -> None:
        """Close and forget our index of pack ``base`` (under lock)."""
        index = self._indexes.pop(base)[1]
        index.close()
        if self._last_hit is index:
            self._last_hit = None

    def _read_packed(self, base: str, pack: Pack, offset: int) -> ShaFile:
        """The object at ``offset`` of ``pack``: read in one call when it is a whole small
        entry, else by dulwich (deltas; and damage, which dulwich puts in words)."""
        fast = self._index(base, pack).read(offset)
        if fast is None:
            return _read_packed(pack, offset)
        return ShaFile.from_raw_string(*fast)

    def _evict(self, pack: Pack) -> None:
        """Drop a damaged pack from dulwich's cache (see :meth:`_lookup`)."""
        for base in [b for b, (p, _) in self._indexes.items() if p is pack]:
            self._drop_index(base)
        # A view of its mmap still alive somewhere makes close() fail; the pack is out of the
        # cache by then, and the mapping goes when the last view does.
        with contextlib.suppress(BufferError):
            self.store.evict(pack)

    # -- writing ---------------------------------------------------------------------------

    def _ensure_dir(self, sub: str) -> str:
        d = os.path.join(self.path, sub)
        if sub not in self._made_dirs:
            os.makedirs(d, exist_ok=True)
            self._made_dirs.add(sub)
        return d

    def _temp(self) -> tuple[int, str]:
        """A new temp file inside objects/, locked while this writer lives (see gc).

        Whoever gets it calls :meth:`_install` or :func:`_discard`, so that a failed write
        (a full disk, an input that changed) leaves no temp file behind for gc to find.
        """
        name = f"tmp_obj_{os.getpid()}_{os.urandom(6).hex()}"
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            _discard(fd, path)
            raise
        return fd, path

    def _install(self, fd: int, tmp: str, oid: str) -> None:
        """fsync if asked, then rename the finished temp file to its loose-object path."""
        try:
            try:
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            d = self._ensure_dir(oid[:2])
            # Renaming over an existing copy is harmless: same id, same bytes.
            os.replace(tmp, os.path.join(d, oid[2:]))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if self.fsync:
            fsync_dir(d)

    def _write_loose(self, oid: str, compressed: bytes) -> None:
        fd, tmp = self._temp()
        try:
            write_all(fd, compressed)
        except BaseException:
            _discard(fd, tmp)
            raise
        self._install(fd, tmp, oid)

    def add_blob(self, data: bytes) -> BlobInfo:
        info = hash_bytes(data)
        if not self.has(info.oid):
            level = self._level_for(data[:SAMPLE])
            if level == 0 and self.compression and len(data) > SMALL_BLOB:
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    return self._add_blob_pack(io.BytesIO(data), info, "blob", pool)
            comp = _zlib.compressobj(level)
            body = comp.compress(b"blob %d\0" % len(data)) + comp.compress(data) + comp.flush()
            self._write_loose(info.oid, body)
        return info

    def _level_for(self, sample: bytes) -> int:
        if self.compression == 0 or len(sample) < 4096:
            return self.compression
        packed = len(zlib.compress(sample, 1))
        return 0 if packed > INCOMPRESSIBLE * len(sample) else self.compression

    def add_blob_stream(
        self, f: BinaryIO, size: int, name: str, progress: Progress | None = None
    ) -> BlobInfo:
        """Store ``size`` bytes read from the seekable ``f`` (two passes; memory ~2 chunks)."""
        header = b"blob %d\0" % size
        start = f.tell()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            sha1 = hashlib.sha1(header)
            sha256 = hashlib.sha256()
            for chunk in _chunks(f, size, name):
                # hashlib releases the GIL on large buffers: SHA-256 runs beside SHA-1.
                job = pool.submit(sha256.update, chunk)
                sha1.update(chunk)
                job.result()
                if progress is not None:
                    progress(len(chunk))
            info = BlobInfo(sha1.hexdigest(), sha256.hexdigest(), size)
            if self.has(info.oid):
                return info
            f.seek(start)
            if self.compression and self._level_for(f.read(SAMPLE)) == 0:
                f.seek(start)
                return self._add_blob_pack(f, info, name, pool)
            f.seek(start)
            check = hashlib.sha1(header)
            fd, tmp = self._temp()
            try:
                comp: _zlib.Compressor | None = None
                for chunk in _chunks(f, size, name):
                    if comp is None:
                        comp = _zlib.compressobj(self._level_for(chunk[:SAMPLE]))
                        write_all(fd, comp.compress(header))
                    job = pool.submit(check.update, chunk)
                    write_all(fd, comp.compress(chunk))
                    job.result()
                if comp is None:
                    comp = _zlib.compressobj(self.compression)
                    write_all(fd, comp.compress(header))
                write_all(fd, comp.flush())
                if check.hexdigest() != info.oid:
                    raise InputError(f"{name}: changed while it was being stored")
            except BaseException:
                _discard(fd, tmp)
                raise
            self._install(fd, tmp, info.oid)
        return info

    def _add_blob_pack(
        self, f: BinaryIO, info: BlobInfo, name: str, pool: concurrent.futures.Executor
    ) -> BlobInfo:
        """Store a big blob that does not compress as a one-entry pack at level 0, whose bytes
        transfers copy as they are (see :mod:`gitstore.backend.blobpack`)."""
        check = hashlib.sha1(b"blob %d\0" % info.size)
        writer = BlobPackWriter(self.pack_dir, info.size, fsync=self.fsync)
        try:
            for chunk in _chunks(f, info.size, name):
                job = pool.submit(check.update, chunk)
                writer.add(chunk)
                job.result()
            if check.hexdigest() != info.oid:
                raise InputError(f"{name}: changed while it was being stored")
            writer.finish(info.oid)
        except BaseException:
            writer.abort()
            raise
        return info

    def add_objects(self, objects: Sequence[ShaFile]) -> None:
        """Write small objects as one pack (a few, if they add up past PACK_FLUSH_BYTES)."""
        self._write_packs(self._entries(objects))

    def _entries(self, objects: Sequence[ShaFile]) -> Iterator[Entry]:
        """The pack entries of ``objects``, less big blobs already stored."""
        for obj in objects:
            if (
                isinstance(obj, Blob)
                and obj.raw_length() >= DEDUP_MIN
                and self.has(obj.id.decode())
            ):
                continue
            yield entry_for(obj, self.compression)

    def add_raw(self, objects: Sequence[RawObject]) -> None:
        """Write objects given as raw bytes as one pack (a few past PACK_FLUSH_BYTES)."""
        self._write_packs(
            raw_entry(obj.kind, obj.raw, obj.sha, self.compression)
            for obj in objects
            # A big blob already stored is not written again (as add_objects).
            if not (
                obj.kind == _PACK_BLOB and len(obj.raw) >= DEDUP_MIN and self.has(obj.sha.hex())
            )
        )

    def _write_packs(self, entries: Iterable[Entry]) -> None:
        """Write ``entries`` as packs of about PACK_FLUSH_BYTES each (one for a small batch)."""
        batch: list[Entry] = []
        held = 0
        for entry in entries:
            batch.append(entry)
            held += len(entry.data)
            if held >= PACK_FLUSH_BYTES:
                self._write_pack(batch)
                batch, held = [], 0
        if batch:
            self._write_pack(batch)

    def _write_pack(self, batch: list[Entry]) -> None:
        self._ensure_dir("pack")
        write_pack(self.pack_dir, batch, fsync=self.fsync)
        self._merge_when_due()

    def _merge_when_due(self) -> None:
        """Merge small packs once more than MERGE_AT have piled up, looking at the folder only
        then: the small packs counted at the last look plus the ones this handle wrote since.

        Listing the folder (and stat'ing every pack) after every pack was a fixed cost of every
        put. Packs other writers add are seen at this handle's next look; each writer merges
        what it finds, so the count stays bounded by about MERGE_AT per live writer.
        """
        self._packs_since_look += 1
        if self._small_packs is not None and self._small_packs + self._packs_since_look <= MERGE_AT:
            return
        merge_small_packs(self.pack_dir, fsync=self.fsync)
        self._small_packs = count_small_packs(self.pack_dir)
        self._packs_since_look = 0

    # -- reading ---------------------------------------------------------------------------

    def get(self, oid: str) -> ShaFile:
        """Object ``oid``, whose bytes are checked against its id (trees and commits steer gc)."""
        fast = self._whole_packed(oid)
        if fast is not None:
            return ShaFile.from_raw_string(*fast)
        return self._lookup(
            oid,
            lambda base, pack, offset: _checked(oid, self._read_packed(base, pack, offset)),
            lambda: self._read_loose(oid),
        )

    def get_raw(self, oid: str) -> tuple[str, bytes]:
        """Kind (``commit``, ``tree``, ``blob``, ``tag``) and bytes of object ``oid``, checked
        against its id: what readers that parse for themselves use (no dulwich object built)."""
        fast = self._whole_packed(oid)
        if fast is not None:
            return _KIND_NAMES[fast[0]].decode(), fast[1]
        obj = self.get(oid)
        return obj.type_name.decode(), obj.as_raw_string()

    def get_raw_many(self, oids: Sequence[str]) -> list[tuple[str, bytes] | None]:
        """:meth:`get_raw` of each of ``oids``, in order, where a pack holds it as a whole entry
        that hashes to its id; None for the others (loose, a delta, missing, damaged), which
        :meth:`get_raw` then reads one by one, or refuses in its own words.

        What a whole-store read (the query index's first build: four objects a version,
        hundreds of thousands in all) pays per object: the lock, the loading of every pack's
        index and the scan of the pack folder are paid once a call, not once an object. Each
        object is read and checked as :meth:`_whole_packed` does (the same SHA-1 check).
        """
        out: list[tuple[str, bytes] | None] = []
        with self._lock:
            order = self._open_indexes()
            for oid in oids:
                try:
                    sha = bytes.fromhex(oid)
                except ValueError:
                    out.append(None)
                    continue
                found: tuple[str, bytes] | None = None
                for i, index in enumerate(order):
                    try:
                        whole = index.whole(sha)
                    except _DAMAGE:
                        break
                    if whole is False:
                        continue
                    if whole is not None:
                        found = (_KIND_TEXT[whole[0]], whole[1])
                        if i:
                            # The pack of the last hit first: a version's commit, trees and
                            # manifest were written together.
                            order.insert(0, order.pop(i))
                    break
                out.append(found)
        return out

    def _open_indexes(self) -> list[PackIndex]:
        """Our index of every cached pack that opens (under lock); the folder is scanned first
        when none is open yet. A pack whose index does not open is left out: the careful way
        (:meth:`_lookup`) reaches it and says what is wrong with it."""
        if not self._indexes:
            self._rescan()
            self._pack_mtime = None
        for base, pack in self.store.cached_packs():
            with contextlib.suppress(PackFileDisappeared, *_DAMAGE):
                self._index(base, pack)
        return [index for _, index in self._indexes.values()]

    def _whole_packed(self, oid: str) -> tuple[int, bytes] | None:
        """(type number, bytes) of ``oid`` from a pack whose index is open, when it is a whole
        entry that hashes to ``oid``; else None, and :meth:`_lookup` finds it the careful way.

        What a whole-store read pays per object: a dict or bisect per pack, one ``pread``, one
        inflate and the SHA-1 check that makes anything the careful way would catch fall
        through to it (a pack truncated, replaced or overwritten, an index that lies).
        """
        try:
            sha = bytes.fromhex(oid)
        except ValueError:
            return None
        with self._lock:
            # The pack of the last hit first: a version's commit, trees and manifest were
            # written together, so the rest of a version is found at the first try.
            last = self._last_hit
            if last is not None:
                found = _whole_in(last, sha)
                if found is not False:
                    return found
            for _, index in self._indexes.values():
                if index is not last:
                    found = _whole_in(index, sha)
                    if found is not False:
                        self._last_hit = index if found is not None else None
                        return found
        return None

    def small_blobs(self, oids: Sequence[str]) -> list[bytes | None]:
        """The bytes of each blob of ``oids`` that a pack holds as a whole entry of at most
        SMALL_BLOB bytes that hashes to its id; None for any other (loose, a delta, bigger,
        damaged): :meth:`open_blob` reads those, and says what is wrong with a damaged one, as
        it always did.

        For readers of many small blobs (an export): the entries are read pack by pack in
        offset order, each with one ``pread`` that the next entry's offset sizes, and inflated
        in one call, without the per-blob file open, header reads and stream objects of
        :meth:`open_blob` (1,000 blobs of 1-16 KiB: about half the time). Memory: the caller
        bounds it by how many it asks for at once.
        """
        out: list[bytes | None] = [None] * len(oids)
        wanted: dict[str, list[tuple[int, int, bytes]]] = {}  # pack base -> (offset, i, sha)
        with self._lock:
            indexes = [(base, index) for base, (_, index) in self._indexes.items()]
            for i, oid in enumerate(oids):
                try:
                    sha = bytes.fromhex(oid)
                except ValueError:
                    continue
                found = _find(indexes, sha)
                # Not in a pack opened yet (the version's blobs may sit apart from its commit
                # and trees) or not packed: a look at the folder (rescanned only if it changed)
                # opens the pack that holds it.
                if found is None and self._packed(oid):
                    indexes = [(base, index) for base, (_, index) in self._indexes.items()]
                    found = _find(indexes, sha)
                if found is not None:
                    wanted.setdefault(found[0], []).append((found[1], i, sha))
        for base, entries in wanted.items():
            entries.sort()
            try:
                fd = os.open(base + ".pack", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # merged away meanwhile: open_blob looks again
            try:
                for k, (offset, i, sha) in enumerate(entries):
                    span = entries[k + 1][0] - offset if k + 1 < len(entries) else 0
                    out[i] = _small_blob_at(fd, offset, span, sha)
            except OSError:
                pass  # what is left is read by open_blob, which reports the damage
            finally:
                os.close(fd)
        return out

    def _read_loose(self, oid: str) -> ShaFile | None:
        hexsha = ObjectID(oid.encode())
        obj = self.store.loose_object(hexsha)
        if obj is not None:
            return _checked(oid, obj)
        for alternate in self.store.alternates:
            with contextlib.suppress(KeyError):
                return alternate[hexsha]
        return None

    def open_blob(self, oid: str, expect_sha256: str | None = None) -> BlobReader:
        return self._lookup(
            oid,
            lambda base, pack, offset: self._open_packed(oid, base, pack, offset, expect_sha256),
            lambda: self._open_loose(oid, expect_sha256),
        )

    def _open_loose(self, oid: str, expect_sha256: str | None) -> BlobReader | None:
        try:
            fh = open(self._loose_path(oid), "rb")  # noqa: SIM115 - closed by the reader
        except FileNotFoundError:
            return None
        try:
            size, chunks = _inflate_loose(fh, oid)
        except BaseException:
            fh.close()
            raise
        return BlobReader(oid, size, chunks, fh.close, expect_sha256)

    def _open_packed(
        self, oid: str, base: str, pack: Pack, offset: int, expect_sha256: str | None
    ) -> BlobReader:
        fh = open(base + ".pack", "rb")  # noqa: SIM115 - closed by the reader
        try:
            fh.seek(offset)
            kind, size = _packentry_header(fh)
            if kind == _PACK_BLOB:
                return BlobReader(oid, size, _inflate(fh, oid, size), fh.close, expect_sha256)
        except BaseException:
            fh.close()
            raise
        fh.close()
        if kind not in (_PACK_OFS_DELTA, _PACK_REF_DELTA):
            raise IntegrityError(f"object {oid} is not a blob")
        # A deltified entry (written by git gc, never by gitstore) is resolved whole by dulwich.
        obj = _read_packed(pack, offset)
        data = obj.as_raw_string()
        chunks = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
        return BlobReader(oid, len(data), chunks, expect_sha256=expect_sha256)

    def _lookup(
        self, oid: str, packed: Callable[[str, Pack, int], _T], loose: Callable[[], _T | None]
    ) -> _T:
        """``packed(base, pack, offset)`` for the first pack holding ``oid`` (``base``: its path
        without ``.pack``), else ``loose()``.

        Packs come and go under a long-lived handle (other writers add them; merges remove
        them), so a vanished pack or a miss rescans the pack folder and looks again. A copy that
        cannot be read is passed over for the next; when none is left, the IntegrityError says
        what was wrong with the first. A damaged pack is dropped from dulwich's cache, which
        checks a pack against its index only when it first opens it: the next lookup that
        reaches it checks it afresh rather than reading past the damage.
        """
        try:
            sha = RawObjectID(bytes.fromhex(oid))
        except ValueError:
            sha = RawObjectID(b"")
        if len(sha) != 20:
            raise IntegrityError(f"{oid!r} is not an object id")
        damage: str | None = None
        for attempt in range(_LOOKUP_TRIES):
            with self._lock:
                damaged = []
                for base, pack in self.store.cached_packs():
                    path = base + ".idx"  # the file at fault if what follows fails
                    try:
                        offset = self._index(base, pack).offset(sha)
                        if offset is None:
                            continue
                        path = base + ".pack"
                        _check_pack(pack)
                        return packed(base, pack, offset)
                    except (PackFileDisappeared, FileNotFoundError):
                        continue  # merged away: the rescan below finds the merged pack
                    except _DAMAGE as e:
                        damage = damage or self._damage(path, e)
                        damaged.append(pack)
                for pack in damaged:  # not inside the except: see _usable
                    self._evict(pack)
            try:
                found = loose()
            except _DAMAGE as e:
                damage = damage or self._damage(self._loose_path(oid), e)
            else:
                if found is not None:
                    return found
            if damage is not None and attempt:
                break  # looked again after a rescan: no readable copy appeared
            _lookup_pause(attempt)
            with self._lock:
                self._rescan()
                self._pack_mtime = None
        if damage is not None:
            raise IntegrityError(f"object {oid} cannot be read: {damage}")
        raise IntegrityError(f"object {oid} is missing from the store{self._unindexed_hint()}")

    def _where(self, path: str) -> str:
        """``path`` as the store knows it (``objects/pack/pack-….pack``): short, and findable."""
        return os.path.relpath(path, os.path.dirname(self.path))

    def _damage(self, path: str, e: BaseException) -> str:
        """What was wrong with which file, in words: ``objects/…: why``."""
        if isinstance(e, OSError):
            return f"{self._where(os.fsdecode(e.filename or path))}: {e.strerror or e}"
        if isinstance(e, ChecksumMismatch):
            return f"{self._where(path)}: it does not match its index (truncated or overwritten)"
        text = str(e) or type(e).__name__
        if text.startswith(path):  # some dulwich messages start with the path: say it once
            text = text[len(path) :].lstrip(": ")
        return f"{self._where(path)}: {text}"

    def _unindexed_hint(self) -> str:
        """Name a pack without its index, if there is one: the likeliest place of a lost object."""
        try:
            names = set(os.listdir(self.pack_dir))
        except OSError:
            return ""
        orphans = sorted(n for n in names if n.endswith(".pack") and n[:-5] + ".idx" not in names)
        if not orphans:
            return ""
        where = self._where(os.path.join(self.pack_dir, orphans[0]))
        if len(orphans) > 1:
            where, has, it = f"{where} and {len(orphans) - 1} more", "have", "them"
        else:
            has, it = "has", "it"
        return f" ({where} {has} no .idx; 'git index-pack' rebuilds {it})"

    def close(self) -> None:
        with self._lock:
            for base in list(self._indexes):
                self._drop_index(base)
            self.store.close()


class _PackCache(DiskObjectStore):
    """dulwich's disk object store, with the parts of its pack cache that DiskObjects steers.

    DiskObjects decides itself when to rescan the pack folder (when the folder's mtime moved, or
    after a miss), and drops a damaged pack from the cache so that the next lookup reaching it
    checks it afresh. dulwich keeps these steps internal; this subclass names them.
    """

    def rescan(self) -> None:
        """Open packs that appeared in the folder and close those that left it."""
        self._update_pack_cache()

    def cached_packs(self) -> list[tuple[str, Pack]]:
        """Every pack known now, with its path without ``.pack`` / ``.idx``."""
        # Concatenation, not os.path.join: this runs for every object read (~1 µs a pack).
        prefix = os.path.join(self.pack_dir, "")
        return [(prefix + b, p) for b, p in list(self._pack_cache.items())]

    def evict(self, pack: Pack) -> None:
        """Forget ``pack`` (damaged): a later rescan opens and checks it again."""
        self._evict_pack(pack)

    def loose_object(self, sha: ObjectID) -> ShaFile | None:
        """The loose object ``sha``, parsed (None if there is no such file)."""
        return self._get_loose_object(sha)


# A lookup that misses looks again, after a rescan of the pack folder: a merge may have replaced
# the pack it knew, and a directory listing taken while a merge swaps packs may show neither the
# old packs nor the merged one. The pauses grow to a few milliseconds; a truly missing object
# costs about 50 ms before it is reported.
_LOOKUP_TRIES = 8


# How close to a change of the pack folder a listing of it cannot be trusted to have seen every
# change of that clock tick (file times move in kernel ticks, 1-10 ms; generous on purpose).
_RACY_PACK_DIR_NS = 50_000_000


def _lookup_pause(attempt: int) -> None:
    if attempt:
        time.sleep(min(0.02, 0.0005 * 2**attempt))


def read_raw_many(objects: ObjectBackend, oids: Sequence[str]) -> list[tuple[str, bytes] | None]:
    """``objects.get_raw`` of each of ``oids`` where it reads without fault, else None (for
    readers of many objects that then read the None ones again one by one, the careful way, so
    that what is wrong is said as a single read says it). One pass for a disk store (see
    :meth:`DiskObjects.get_raw_many`)."""
    if isinstance(objects, DiskObjects):
        return objects.get_raw_many(oids)
    out: list[tuple[str, bytes] | None] = []
    for oid in oids:
        try:
            out.append(objects.get_raw(oid))
        except IntegrityError:
            out.append(None)
    return out


def _whole_in(index: PackIndex, sha: bytes) -> tuple[int, bytes] | Literal[False] | None:
    """:meth:`DiskObjects._whole_packed` in one pack: False when the pack does not hold ``sha``,
    None when it does but not as a readable whole entry that hashes to ``sha``."""
    try:
        return index.whole(sha)
    except _DAMAGE:
        return None


def small_blobs(objects: ObjectBackend, oids: Sequence[str]) -> list[bytes | None]:
    """:meth:`DiskObjects.small_blobs` where ``objects`` is a disk store; elsewhere all None
    (each blob is then read with ``open_blob``)."""
    if isinstance(objects, DiskObjects):
        return objects.small_blobs(oids)
    return [None] * len(oids)


def _find(indexes: list[tuple[str, PackIndex]], sha: bytes) -> tuple[str, int] | None:
    """The first pack of ``indexes`` holding ``sha``, and where: (base, offset)."""
    for base, index in indexes:
        offset = index.offset(sha)
        if offset is not None:
            return base, offset
    return None


# The compressed entry of a blob of SMALL_BLOB bytes is at most zlib's bound of that, plus its
# header: a longer span to the next entry is not read whole.
_SMALL_ENTRY = SMALL_BLOB + (SMALL_BLOB >> 12) + (SMALL_BLOB >> 14) + 64


def _small_blob_at(fd: int, offset: int, span: int, sha: bytes) -> bytes | None:
    """The blob entry at ``offset`` of the pack open as ``fd`` if it is a whole entry of at most
    SMALL_BLOB bytes that inflates to the size its header says and hashes to ``sha``; else None.
    ``span``: bytes to the next entry wanted (0 if none or unknown). OSError if reading fails."""
    if not 0 < span <= _SMALL_ENTRY:
        head = os.pread(fd, ENTRY_HEADER_MAX, offset)
        parsed = entry_header(head)
        if parsed is None or parsed[1] > SMALL_BLOB:
            return None
        at, size = parsed[0], parsed[1]
        span = at + size + (size >> 12) + (size >> 14) + 13  # zlib's compressBound
    data = os.pread(fd, span, offset)
    parsed = entry_header(data)
    if parsed is None or parsed[1] > SMALL_BLOB or parsed[2] != _PACK_BLOB:
        return None
    at, size = parsed[0], parsed[1]
    d = _zlib.decompressobj()
    try:
        # At most one byte more than promised: a stream that inflates further is refused here
        # without inflating it all.
        raw = d.decompress(data[at:], size + 1)
    except _zlib.ERRORS:
        return None
    if not d.eof or len(raw) != size:
        return None
    check = hashlib.sha1(b"blob %d\0" % size)
    check.update(raw)
    return raw if check.digest() == sha else None


def _discard(fd: int, tmp: str) -> None:
    """Close and remove a temp file whose write failed (the error being raised is the news)."""
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _check_pack(pack: Pack) -> None:
    """Open the pack's data if need be: dulwich then checks its length and trailer against the
    index (ChecksumMismatch for a truncated or overwritten pack)."""
    _ = pack.data


def _read_packed(pack: Pack, offset: int) -> ShaFile:
    kind, entry = pack.data.get_object_at(offset)
    kind, chunks = pack.resolve_object(offset, kind, entry)
    return ShaFile.from_raw_string(kind, b"".join(chunks))  # type: ignore[arg-type]


def _checked(oid: str, obj: ShaFile) -> ShaFile:
    """``obj`` if its bytes hash to ``oid``; dulwich takes the id on trust."""
    raw = obj.as_raw_string()
    sha1 = hashlib.sha1(b"%s %d\0" % (obj.type_name, len(raw)))
    sha1.update(raw)
    if sha1.hexdigest() != oid.lower():
        raise ValueError(f"its bytes hash to {sha1.hexdigest()}")
    return obj


def _chunks(f: BinaryIO, size: int, name: str) -> Iterable[bytes]:
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise InputError(
                f"{name}: changed while it was being stored (shorter than {size} bytes)"
            )
        left -= len(chunk)
        yield chunk


def _read_exact(f: BinaryIO, size: int, name: str, progress: Progress | None) -> bytes:
    parts = []
    for chunk in _chunks(f, size, name):
        parts.append(chunk)
        if progress is not None:
            progress(len(chunk))
    return b"".join(parts)


def _inflate_loose(fh: BinaryIO, oid: str) -> tuple[int, Iterable[bytes]]:
    """Parse a loose object's header; return the blob size and an iterator over its bytes."""
    d = _zlib.decompressobj()
    head = b""
    try:
        while b"\0" not in head:
            raw = fh.read(4096)
            if not raw:
                raise IntegrityError(f"object {oid} is truncated")
            head += d.decompress(raw, 8192)
            if len(head) > 64 and b"\0" not in head:
                raise IntegrityError(f"object {oid} has a damaged header")
    except _zlib.ERRORS as e:
        raise IntegrityError(f"object {oid} is corrupt: {e}") from None
    header, _, rest = head.partition(b"\0")
    kind, _, size_text = header.partition(b" ")
    if kind != b"blob" or not size_text.isdigit():
        raise IntegrityError(f"object {oid} is not a blob")
    size = int(size_text)

    def gen() -> Iterable[bytes]:
        yield rest
        yield from _drain(fh, d, oid)

    return size, gen()


def _drain(fh: BinaryIO, d: _zlib.Decompressor, oid: str) -> Iterable[bytes]:
    try:
        while True:
            # eof first: in a pack the next entry follows this one, and once the stream has
            # ended zlib keeps those bytes in unconsumed_tail without ever consuming them.
            if d.eof:
                return
            if d.unconsumed_tail:
                yield d.decompress(d.unconsumed_tail, CHUNK)
                continue
            # Small raw reads: a 1 MiB read of text that inflates tenfold would leave a large
            # unconsumed_tail to be copied again on every call.
            raw = fh.read(64 << 10)
            if not raw:
                if not d.eof:
                    raise IntegrityError(f"object {oid} is truncated")
                return
            yield d.decompress(raw, CHUNK)
    except _zlib.ERRORS as e:
        raise IntegrityError(f"object {oid} is corrupt: {e}") from None
    except OSError as e:
        raise IntegrityError(f"object {oid} cannot be read: {e.strerror or e}") from None


def _inflate(fh: BinaryIO, oid: str, size: int) -> Iterable[bytes]:
    return _drain(fh, _zlib.decompressobj(), oid)


def _packentry_header(fh: BinaryIO) -> tuple[int, int]:
    byte = fh.read(1)[0]
    kind = (byte >> 4) & 7
    size = byte & 15
    shift = 4
    while byte & 0x80:
        byte = fh.read(1)[0]
        size |= (byte & 0x7F) << shift
        shift += 7
    return kind, size
