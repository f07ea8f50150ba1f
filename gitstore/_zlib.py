"""zlib streams for big blobs: ISA-L where it is installed, the standard library otherwise.

Both write and read standard zlib streams (RFC 1950): git and dulwich read what either writes, and
either reads what git writes. ISA-L's level 1 compresses text about four times faster than zlib's
(with a slightly better ratio) and its inflate is about twice as fast, which is what puts and gets
of large logs are bound by. Level 0 (stored blocks, for incompressible content) and levels above 1
stay with zlib, whose levels they are.
"""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import Protocol

_isal: ModuleType | None
try:
    from isal import isal_zlib as _isal
except ImportError:  # no wheel for this platform: the standard library does the same, slower
    _isal = None

__all__ = [
    "ERRORS",
    "FAST",
    "Compressor",
    "Decompressor",
    "adler32",
    "compress",
    "compressobj",
    "crc32",
    "decompressobj",
]

FAST = _isal is not None
ERRORS: tuple[type[Exception], ...] = (zlib.error, _isal.error) if _isal else (zlib.error,)


class Compressor(Protocol):
    """What a compress object offers (zlib's and ISA-L's alike)."""

    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


class Decompressor(Protocol):
    """What a decompress object offers (zlib's and ISA-L's alike)."""

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, /, max_length: int = ...) -> bytes: ...


def compressobj(level: int) -> Compressor:
    """A compressor writing one zlib stream at ``level`` (ISA-L for level 1 when available)."""
    if level == 1 and _isal is not None:
        fast: Compressor = _isal.compressobj(1)
        return fast
    return zlib.compressobj(level)


def compress(data: bytes, level: int) -> bytes:
    """``data`` as one zlib stream at ``level`` (ISA-L for level 1 when available): for small
    objects, where setting up zlib's compressor costs more than the compressing."""
    if level == 1 and _isal is not None:
        out: bytes = _isal.compress(data, 1)
        return out
    return zlib.compress(data, level)


def decompressobj() -> Decompressor:
    """A decompressor for one zlib stream, whoever wrote it."""
    if _isal is not None:
        fast: Decompressor = _isal.decompressobj()
        return fast
    return zlib.decompressobj()


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 of ``data`` continuing from ``value`` (ISA-L's is ~3x faster than zlib's)."""
    return int((_isal or zlib).crc32(data, value))


def adler32(data: bytes, value: int = 1) -> int:
    """Adler-32 of ``data`` continuing from ``value`` (ISA-L's is ~5x faster than zlib's)."""
    return int((_isal or zlib).adler32(data, value))
