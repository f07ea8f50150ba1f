"""A big blob that does not compress, stored as a pack of one entry whose bytes transfers reuse.

A loose object's zlib stream covers its ``blob <size>`` header, so no pack can take it as an
entry: every transfer (git's pack-objects, dulwich) inflates it and deflates it again, at ~35 MB/s
for random bytes at git's default level. The same bytes as the single entry of a version-2 pack,
deflated at level 0 (stored blocks, framed here at the cost of a copy), are what pack-objects
copies as they are into the pack it sends, and what a push of gitstore copies too.

:class:`BlobPackWriter` writes such a pack as the bytes stream in (memory: one chunk), into a
temp file inside ``objects/pack`` (flocked, so gc leaves a slow writer alone), then its index;
the ``.pack`` is renamed into place first and the ``.idx`` last (readers ignore a pack without
its index). Stock git reads the result like any pack (``git fsck --strict``, ``verify-pack``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import struct

from gitstore import _zlib
from gitstore._fs import fsync_dir, write_all
from gitstore.backend.packs import entry_header

__all__ = ["BlobPackWriter"]

_HEADER = b"PACK" + struct.pack(">II", 2, 1)
_BLOB = 3
# A zlib stream of stored blocks: header (deflate, 32 KiB window, level 0), blocks of at most
# 65,535 bytes each behind a 5-byte head (final flag, length, its complement), Adler-32 last.
_ZLIB_HEAD = b"\x78\x01"
_BLOCK = 0xFFFF
# Bytes gathered before a write (a chunk of the blob, with its block framing).
_BUFFER = 1 << 20


class BlobPackWriter:
    """Writes one blob of ``size`` bytes as a one-entry pack (level 0) and its index.

    Feed the blob's bytes to :meth:`add`, then :meth:`finish` with its id; :meth:`abort` (safe
    to call more than once) removes what was written. The pack's checksum (SHA-1 over all its
    bytes) is computed in a worker thread beside the caller's own work.
    """

    def __init__(self, pack_dir: str, size: int, *, fsync: bool) -> None:
        self.pack_dir = pack_dir
        self.fsync = fsync
        self.size = size
        os.makedirs(pack_dir, exist_ok=True)
        self.tmp = os.path.join(pack_dir, f"tmp_pack_{os.getpid()}_{os.urandom(6).hex()}")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            self.abort()
            raise
        self.sha = hashlib.sha1()
        self.crc = 0
        self.seen = 0
        self.adler = 1
        self.ended = False
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.job: concurrent.futures.Future[None] | None = None
        self.buf: list[bytes] = []
        self.held = 0
        head = entry_header(_BLOB, size) + _ZLIB_HEAD
        self.crc = _zlib.crc32(head)
        self._out(_HEADER + head)

    def _out(self, data: bytes) -> None:
        if not data:
            return
        self.buf.append(data)
        self.held += len(data)
        if self.held >= _BUFFER:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self.buf)
        self.buf, self.held = [], 0
        if self.job is not None:
            self.job.result()  # hashed in order
        # hashlib releases the GIL on large buffers: the checksum runs beside the next chunk.
        self.job = self.pool.submit(self.sha.update, data)
        write_all(self.fd, data)

    def add(self, chunk: bytes) -> None:
        """The next bytes of the blob."""
        self.seen += len(chunk)
        if self.seen > self.size or not chunk:
            self.ended = self.seen == self.size
            return  # finish() reports a size that does not match
        # Stored blocks framed here: zlib's own level 0 copies every byte twice more.
        last = self.seen == self.size
        self.adler = _zlib.adler32(chunk, self.adler)
        view = memoryview(chunk)
        parts: list[bytes | memoryview] = []
        for pos in range(0, len(chunk), _BLOCK):
            block = view[pos : pos + _BLOCK]
            final = last and pos + len(block) == len(chunk)
            parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF))
            parts.append(block)
        if last:
            parts.append(struct.pack(">I", self.adler))
            self.ended = True
        data = b"".join(parts)
        self.crc = _zlib.crc32(data, self.crc)
        self._out(data)

    def finish(self, oid: str) -> str:
        """Seal the pack, write its index, rename both into place; return the pack's path."""
        idx_tmp = None
        try:
            if self.seen != self.size:
                raise ValueError(f"blob pack promised {self.size} bytes, got {self.seen}")
            if not self.ended:  # an empty blob: one empty final block
                tail = struct.pack("<BHH", 1, 0, 0xFFFF) + struct.pack(">I", self.adler)
                self.crc = _zlib.crc32(tail, self.crc)
                self._out(tail)
            self._flush()
            assert self.job is not None
            self.job.result()
            trailer = self.sha.digest()
            write_all(self.fd, trailer)
            if self.fsync:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            idx_tmp = self.tmp + ".idx"
            _write_file(idx_tmp, _index(bytes.fromhex(oid), self.crc, trailer), self.fsync)
            base = os.path.join(self.pack_dir, "pack-" + trailer.hex())
            os.replace(self.tmp, base + ".pack")
            try:
                os.replace(idx_tmp, base + ".idx")
            except BaseException:
                if not os.path.exists(base + ".idx"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(base + ".pack")
                raise
        finally:
            self.abort()
            if idx_tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(idx_tmp)
        if self.fsync:
            fsync_dir(self.pack_dir)
        return base + ".pack"

    def abort(self) -> None:
        """Close and remove the temp files (safe to call more than once)."""
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=True)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _write_file(path: str, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _index(sha: bytes, crc: int, pack_sha: bytes) -> bytes:
    """The version-2 index of a pack whose one entry ``sha`` starts right after its header."""
    fanout = [0 if i < sha[0] else 1 for i in range(256)]
    out = b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout)
    out += sha + struct.pack(">I", crc) + struct.pack(">I", len(_HEADER)) + pack_sha
    return out + hashlib.sha1(out).digest()
