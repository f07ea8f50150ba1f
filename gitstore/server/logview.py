"""Windows of a text artifact for the log view: its head, its tail, any stretch, with line numbers.

A blob is one zlib stream: byte N is reached by inflating every byte before it (at 300-600 MB/s
on the reference machine, so the end of a 1 GiB log costs 2-4 s). The page is built so that the
person never waits for that: the head (the first :data:`WINDOW` bytes, inflated at once) is in
the first response; the tail is fetched by the page afterwards. What such a full pass learns is
kept: :class:`LogReader` remembers, per blob (blobs never change), the last :data:`TAIL_KEEP`
bytes and how many lines come before them, so the tail, and "load more" upwards through those
bytes, are answered from memory afterwards. Concurrent requests for the same blob's tail share
one pass.

A window always starts at the beginning of a line and ends after a newline (or at the end of the
blob), unless a single line is longer than the window: then it is cut and says so. Line numbers
are exact: the newlines before a window are counted on the way to it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable

from gitstore import BlobReader

__all__ = ["PIECE", "TAIL_KEEP", "WINDOW", "LogReader", "Window"]

WINDOW = 256 << 10  # bytes per window: a few thousand lines, rendered in well under a second
TAIL_KEEP = 2 << 20  # bytes of the end of a blob kept after a full pass
PIECE = 1 << 20
Opener = Callable[[], BlobReader]


@dataclasses.dataclass(frozen=True)
class Window:
    """Bytes ``[start, stop)`` of a blob of ``size`` bytes; the first is on line ``first_line``.

    ``cut_start``/``cut_end``: the window starts or ends inside a line (a line longer than a
    window). ``lines_total`` is the blob's line count when a full pass has counted it.
    """

    start: int
    stop: int
    first_line: int
    data: bytes
    size: int
    cut_start: bool = False
    cut_end: bool = False
    lines_total: int | None = None

    def lines(self) -> list[bytes]:
        """The window's lines, without their newlines."""
        if not self.data:
            return []
        parts = self.data.split(b"\n")
        if self.data.endswith(b"\n"):
            parts.pop()
        return parts


@dataclasses.dataclass(frozen=True)
class _Tail:
    start: int  # offset of the first kept byte
    newlines_before: int
    data: bytes
    newlines_total: int


class LogReader:
    """Reads windows of blobs, keeping the tails of the last ``entries`` blobs read to the end."""

    def __init__(self, entries: int = 16) -> None:
        self._tails: OrderedDict[str, _Tail] = OrderedDict()
        self._entries = entries
        self._lock = threading.Lock()
        self._passes: dict[str, threading.Event] = {}

    # -- windows -------------------------------------------------------------------------------

    def forward(
        self, key: str, size: int, opener: Opener, start: int, until: int | None = None
    ) -> Window:
        """The window starting at the first line that begins at or after ``start``.

        ``until`` (a line boundary) caps the window's end: the page asks for the stretch between
        two windows it already shows.
        """
        start = max(0, min(start, size))
        end = size if until is None else max(start, min(until, size))
        lo = max(0, start - 1)  # one byte more: is ``start`` at a line start?
        hi = min(end, start + WINDOW)
        newlines, data = self._read(key, size, opener, lo, hi)
        cut_start = False
        if start > 0:
            if data[:1] == b"\n":
                newlines += 1
                data = data[1:]
            else:
                nl = data.find(b"\n")
                if nl >= 0 and lo + nl + 1 < hi:
                    newlines += 1
                    start = lo + nl + 1
                    data = data[nl + 1 :]
                else:
                    data = data[1:]
                    cut_start = True
        stop = start + len(data)
        cut_end = False
        if stop < end:
            nl = data.rfind(b"\n")
            if nl >= 0:
                data = data[: nl + 1]
                stop = start + len(data)
            else:
                cut_end = True
        return Window(
            start, stop, newlines + 1, data, size, cut_start, cut_end, self._total(key, size)
        )

    def backward(
        self, key: str, size: int, opener: Opener, before: int, after: int | None = None
    ) -> Window:
        """The window of whole lines ending at ``before`` (a line boundary, or the end).

        ``after`` (a line boundary) caps how far back the window reaches.
        """
        before = max(0, min(before, size))
        floor = 0 if after is None else max(0, min(after, before))
        start = max(floor, before - WINDOW)
        lo = max(0, start - 1)
        newlines, data = self._read(key, size, opener, lo, before)
        cut_start = False
        if start > 0:
            if data[:1] == b"\n" or start == floor:
                if data[:1] == b"\n":
                    newlines += 1
                data = data[1:]
            else:
                nl = data.find(b"\n")
                if nl >= 0 and nl + 1 < len(data):
                    newlines += 1
                    start = lo + nl + 1
                    data = data[nl + 1 :]
                else:
                    data = data[1:]
                    cut_start = True
        cut_end = before < size and not data.endswith(b"\n")
        return Window(
            start,
            start + len(data),
            newlines + 1,
            data,
            size,
            cut_start,
            cut_end,
            self._total(key, size),
        )

    def at_line(self, key: str, size: int, opener: Opener, line: int, context: int = 10) -> Window:
        """The window starting ``context`` lines before line ``line`` (1-based)."""
        first = max(1, line - context)
        offset = self._offset_of_line(opener, size, first)
        return self.forward(key, size, opener, offset)

    def tail_cached(self, key: str) -> bool:
        """True when the tail of blob ``key`` is in memory (the tail costs no inflate)."""
        with self._lock:
            return key in self._tails

    # -- reading -------------------------------------------------------------------------------

    def _total(self, key: str, size: int) -> int | None:
        with self._lock:
            tail = self._tails.get(key)
        if tail is None:
            return None
        return tail.newlines_total + (0 if size == 0 or tail.data.endswith(b"\n") else 1)

    def _cached(self, key: str, lo: int, hi: int) -> tuple[int, bytes] | None:
        with self._lock:
            tail = self._tail_for(key, lo)
        if tail is None:
            return None
        head = tail.data[: lo - tail.start]
        return tail.newlines_before + head.count(b"\n"), tail.data[
            lo - tail.start : hi - tail.start
        ]

    def _tail_for(self, key: str, lo: int) -> _Tail | None:
        """The kept tail of ``key`` if it holds offset ``lo`` (call with the lock held)."""
        tail = self._tails.get(key)
        if tail is None or lo < tail.start:
            return None
        self._tails.move_to_end(key)
        return tail

    def _read(self, key: str, size: int, opener: Opener, lo: int, hi: int) -> tuple[int, bytes]:
        """(newlines before ``lo``, bytes ``[lo, hi)``), from memory when the tail holds them."""
        hit = self._cached(key, lo, hi)
        if hit is not None:
            return hit
        if hi < size - TAIL_KEEP:
            return _scan(opener, lo, hi)
        # The request reaches the last TAIL_KEEP bytes: one full pass, shared by concurrent
        # requests for the same blob, whose end is kept for the next ones.
        with self._lock:
            # Checked again under the lock: a pass may have ended since the look above.
            done = self._tail_for(key, lo) is not None
            running = self._passes.get(key)
            mine = running is None and not done
            if mine:
                running = self._passes[key] = threading.Event()
        if done:
            hit = self._cached(key, lo, hi)
            if hit is not None:
                return hit
            return _scan(opener, lo, hi)
        assert running is not None
        if not mine:
            running.wait()
            hit = self._cached(key, lo, hi)
            if hit is not None:
                return hit
            return _scan(opener, lo, hi)
        try:
            keep = max(0, min(lo, size - TAIL_KEEP))
            newlines, data = _scan(opener, keep, size)
            tail = _Tail(keep, newlines, data, newlines + data.count(b"\n"))
            with self._lock:
                self._tails[key] = tail
                self._tails.move_to_end(key)
                while len(self._tails) > self._entries:
                    self._tails.popitem(last=False)
        finally:
            with self._lock:
                del self._passes[key]
            running.set()
        return newlines + data[: lo - keep].count(b"\n"), data[lo - keep : hi - keep]

    def _offset_of_line(self, opener: Opener, size: int, line: int) -> int:
        """The byte offset where line ``line`` starts (the end of the blob if it has fewer)."""
        want = line - 1  # newlines to pass
        if want <= 0:
            return 0
        seen = 0
        pos = 0
        with opener() as reader:
            while piece := reader.read(PIECE):
                n = piece.count(b"\n")
                if seen + n >= want:
                    at = -1
                    for _ in range(want - seen):
                        at = piece.index(b"\n", at + 1)
                    return pos + at + 1
                seen += n
                pos += len(piece)
        return size


def _scan(opener: Opener, lo: int, hi: int) -> tuple[int, bytes]:
    """Inflate a blob up to ``hi``: (newlines before ``lo``, bytes ``[lo, hi)``)."""
    newlines = 0
    pos = 0
    out: list[bytes] = []
    with opener() as reader:
        while pos < hi:
            piece = reader.read(min(PIECE, hi - pos))
            if not piece:
                break
            end = pos + len(piece)
            if end <= lo:
                newlines += piece.count(b"\n")
            elif pos < lo:
                newlines += piece.count(b"\n", 0, lo - pos)
                out.append(piece[lo - pos :])
            else:
                out.append(piece)
            pos = end
    return newlines, b"".join(out)
