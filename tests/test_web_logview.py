"""Windows of a log blob: head, tail, any stretch, with exact line numbers, in bounded reads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitstore import BlobReader, Store
from gitstore.server import logview
from gitstore.server.logview import LogReader, Window


def numbered(n: int) -> bytes:
    """Lines ``line 1`` .. ``line n``, each ending in a newline."""
    return b"".join(b"line %d\n" % i for i in range(1, n + 1))


class Blob:
    """A blob in a real store, and a count of how often it was opened (each open inflates)."""

    def __init__(self, tmp_path: Path, data: bytes) -> None:
        self.store = Store.open(tmp_path / "s.git", create=True)
        info = self.store.put("s/t", {"log.log": data}).artifact("log.log")
        self.uri, self.oid, self.size = info.uri, info.oid, info.size
        self.opens = 0

    def opener(self) -> BlobReader:
        self.opens += 1
        return self.store.open_artifact(self.uri)


@pytest.fixture
def blob(tmp_path: Path) -> Iterator[Callable[[bytes], Blob]]:
    made: list[Blob] = []

    def make(data: bytes) -> Blob:
        made.append(Blob(tmp_path, data))
        return made[-1]

    yield make
    for b in made:
        b.store.close()


def check(window: Window, first: int, count: int) -> None:
    """The window holds lines ``first`` .. ``first + count - 1`` of :func:`numbered`, exactly."""
    assert window.first_line == first
    assert window.lines() == [b"line %d" % i for i in range(first, first + count)]


def test_a_small_log_is_one_window(blob: Callable[[bytes], Blob]) -> None:
    b = blob(numbered(100))
    w = LogReader().forward(b.oid, b.size, b.opener, 0)
    check(w, 1, 100)
    assert (w.start, w.stop, w.cut_start, w.cut_end) == (0, b.size, False, False)


def test_the_head_of_a_big_log_ends_on_a_line_end(blob: Callable[[bytes], Blob]) -> None:
    b = blob(numbered(200_000))
    w = LogReader().forward(b.oid, b.size, b.opener, 0)
    assert w.data.endswith(b"\n") and w.stop <= logview.WINDOW
    check(w, 1, len(w.lines()))


def test_the_tail_has_exact_line_numbers_and_is_kept(blob: Callable[[bytes], Blob]) -> None:
    b = blob(numbered(200_000))
    reader = LogReader()
    tail = reader.backward(b.oid, b.size, b.opener, b.size)
    n = len(tail.lines())
    check(tail, 200_000 - n + 1, n)
    assert tail.stop == b.size and tail.lines_total == 200_000
    assert reader.tail_cached(b.oid)
    opens = b.opens
    # More of the end, and the same tail again, come from memory.
    above = reader.backward(b.oid, b.size, b.opener, tail.start)
    check(above, tail.first_line - len(above.lines()), len(above.lines()))
    assert reader.backward(b.oid, b.size, b.opener, b.size) == tail
    assert b.opens == opens


def test_windows_met_from_both_sides_cover_every_line_once(
    blob: Callable[[bytes], Blob],
) -> None:
    b = blob(numbered(120_000))
    reader = LogReader()
    head = reader.forward(b.oid, b.size, b.opener, 0)
    tail = reader.backward(b.oid, b.size, b.opener, b.size, after=head.stop)
    lo, hi = head.stop, tail.start
    seen = head.lines()
    middle: list[bytes] = []
    while lo < hi:  # "load more" downwards until the gap closes
        w = reader.forward(b.oid, b.size, b.opener, lo, until=hi)
        assert w.start == lo and w.stop > lo
        middle += w.lines()
        lo = w.stop
    assert seen + middle + tail.lines() == numbered(120_000).split(b"\n")[:-1]


def test_a_window_asked_for_mid_line_starts_at_the_next_line(
    blob: Callable[[bytes], Blob],
) -> None:
    b = blob(numbered(1000))
    start = len(numbered(10)) + 3  # inside "line 11"
    w = LogReader().forward(b.oid, b.size, b.opener, start)
    check(w, 12, 989)


def test_at_line_starts_a_little_before_the_line(blob: Callable[[bytes], Blob]) -> None:
    b = blob(numbered(50_000))
    w = LogReader().at_line(b.oid, b.size, b.opener, 30_000, context=10)
    assert w.first_line == 29_990
    assert w.lines()[10] == b"line 30000"


def test_a_line_longer_than_a_window_is_cut_and_says_so(blob: Callable[[bytes], Blob]) -> None:
    long_line = b"x" * (logview.WINDOW * 3) + b"\n"
    b = blob(b"first\n" + long_line + b"last\n")
    reader = LogReader()
    head = reader.forward(b.oid, b.size, b.opener, 0)
    assert head.lines() == [b"first"] and not head.cut_end
    part = reader.forward(b.oid, b.size, b.opener, head.stop)
    assert (part.first_line, part.cut_start, part.cut_end) == (2, False, True)
    assert part.lines() == [b"x" * logview.WINDOW]
    rest = reader.forward(b.oid, b.size, b.opener, part.stop)
    assert (rest.first_line, rest.cut_start, rest.start) == (2, True, part.stop)
    end = reader.backward(b.oid, b.size, b.opener, b.size)
    assert end.lines()[-1] == b"last" and end.first_line + len(end.lines()) - 1 == 3


def test_a_log_without_a_final_newline_counts_its_last_line(
    blob: Callable[[bytes], Blob],
) -> None:
    b = blob(numbered(99_999) + b"the end, no newline")
    tail = LogReader().backward(b.oid, b.size, b.opener, b.size)
    assert tail.lines()[-1] == b"the end, no newline"
    assert tail.lines_total == 100_000
    assert tail.first_line + len(tail.lines()) - 1 == 100_000


def test_concurrent_tail_requests_share_one_pass(blob: Callable[[bytes], Blob]) -> None:
    b = blob(numbered(300_000))
    reader = LogReader()
    gate = threading.Barrier(4)
    results: list[Window] = []

    def ask() -> None:
        gate.wait()
        results.append(reader.backward(b.oid, b.size, b.opener, b.size))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert b.opens == 1
