"""A stream put back together after a peek at its start."""

from __future__ import annotations

import io
from typing import IO


class Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``src``: what a reader sees after peeking at ``head``
    (for example to tell binary from text) and wanting the whole stream again."""

    def __init__(self, head: bytes, src: IO[bytes]) -> None:
        self._head = head
        self._src = src

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                out, self._head = self._head + self._src.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._src.read(-1 if n is None else n)
