"""Human output made safe: what the commands print to a terminal cannot forge lines or drive it.

A store's names, messages, metadata and a remote's answers come from elsewhere (DESIGN.md 7: input
from elsewhere is hostile). Printed raw, a newline in an artifact name would forge a row of ``ls``
and an ESC would send the terminal a control sequence. Every line of human output therefore goes
through :func:`printable`; ``--json`` output does not need it (JSON escapes control characters).

It also holds the look of human output, one place for every command: sizes (:func:`size`), the
one date format and relative times (:func:`when`, :func:`ago`), ``true``/``false``
(:func:`value`), tables with a header row (:func:`table`), colour (:func:`style`: only on a
terminal, never with ``NO_COLOR`` or ``--color=never``), ``-q``/``-v`` (:func:`note`,
:func:`verbose`), and progress of long transfers (:func:`byte_progress`, drawn by tqdm, imported
only when a bar is drawn so that ``gitstore --help`` does not pay for it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import datetime as _dt

    from tqdm import tqdm

    from gitstore import Store

__all__ = [
    "PROGRESS_MIN_BYTES",
    "ago",
    "byte_progress",
    "color_enabled",
    "confirm",
    "echo",
    "emit_json",
    "io_progress",
    "Transfer",
    "is_terminal",
    "note",
    "open_store",
    "printable",
    "quiet",
    "say",
    "size",
    "style",
    "table",
    "value",
    "verbose",
    "when",
]

# Below this size a bar would only flash; above it a transfer takes long enough to watch.
PROGRESS_MIN_BYTES = 1 << 20

# C0 controls, DEL and C1 controls; Unicode line and paragraph separators (some programs break
# lines there); the bidirectional embeddings, overrides and isolates (they reorder what is shown);
# lone surrogates, which a name decoded with surrogateescape may hold and no terminal can encode.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as a visible escape (``\\n``, ``\\x1b``).

    Ordinary Unicode is left readable. Backslashes are not doubled, so the result reads like the
    name it shows; it is for people, and scripts read ``--json``. Escaping twice changes nothing.
    """
    return _UNSAFE.sub(_escape, text)


def open_store(*, create: bool = False) -> Store:
    """The store chosen by ``gitstore --store`` (or ``$GITSTORE_DIR``), closed when the command
    ends; made only when ``create`` (a command that writes). The path is on the root context,
    so a subcommand (``alias rm``, ``remote add``) finds it too."""
    from gitstore import Store

    ctx = click.get_current_context()
    return ctx.with_resource(Store.open(ctx.find_root().obj, create=create))


def emit_json(value: Any) -> None:
    """Print ``value`` (a library ``to_dict()`` shape) as the one indented JSON document."""
    click.echo(json.dumps(value, indent=2))


def say(text: str = "", *, err: bool = False) -> None:
    """Print one line of human output, escaped with :func:`printable`."""
    click.echo(printable(text), err=err)


def echo(text: str = "", *, err: bool = False) -> None:
    """Print a line built from parts already escaped with :func:`printable` and coloured with
    :func:`style`: its escape sequences are ours, and are kept even when piped (``--color``)."""
    click.echo(text, err=err, color=True)


# -- settings of the run: --color, -q, -v (kept on the root context by cli.main) ---------------

COLOR_KEY = "gitstore.color"
VERBOSITY_KEY = "gitstore.verbosity"


def _root_meta() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta if ctx is not None else {}


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is a terminal (a stream without ``isatty`` is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def color_enabled(err: bool = False) -> bool:
    """Whether to colour output: ``--color=always|never``, else only on a terminal without
    ``NO_COLOR`` set (https://no-color.org: any non-empty value turns colour off)."""
    choice = _root_meta().get(COLOR_KEY, "auto")
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return is_terminal(sys.stderr if err else sys.stdout)


def style(text: str, *, err: bool = False, **styles: Any) -> str:
    """``text`` with click.style's ``styles`` when colour is on; unchanged otherwise."""
    return click.style(text, **styles) if color_enabled(err) else text


def quiet() -> bool:
    """``-q``: only results and errors (no notes, no progress)."""
    return int(_root_meta().get(VERBOSITY_KEY, 0)) < 0


def verbose() -> bool:
    """``-v``: full commit ids and the store's path."""
    return int(_root_meta().get(VERBOSITY_KEY, 0)) > 0


def note(text: str, *, err: bool = True) -> None:
    """A remark about what happened (a store created, a dry run), silenced by ``-q``.

    On stderr by default, so that stdout holds only the answer a script may read.
    """
    if not quiet():
        echo(style(printable(text), err=err, dim=True), err=err)


def confirm(question: str, yes: bool) -> bool:
    """The one rule of commands that delete tasks (``rm --task``, ``rm-run``).

    ``--yes`` deletes; on a terminal (stdin and stderr) the question is asked; elsewhere nothing
    is deleted, and the command says what it would delete.
    """
    if yes:
        return True
    if not (is_terminal(sys.stdin) and is_terminal(sys.stderr)):
        return False
    return click.confirm(question, default=False, err=True)


# -- values ------------------------------------------------------------------------------------

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def size(n: int | None) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``300.0 MiB`` (powers of 1024)."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # the loop returns at the last unit


def _parse(iso: str) -> _dt.datetime | None:
    import datetime as _dt  # at first use: `gitstore --help` need not load it

    try:
        parsed = _dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)


def when(iso: str | None) -> str:
    """The one date format of human output: ``2026-11-30 09:21:14Z`` (UTC, to the second)."""
    import datetime as _dt

    if not iso:
        return "-"
    parsed = _parse(iso)
    if parsed is None:
        return iso  # shown as stored rather than hidden: it came from the store
    return parsed.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(iso: str | None, now: _dt.datetime | None = None) -> str:
    """How long ago, the way people say it: ``just now``, ``5 minutes ago``, ``3 days ago``."""
    import datetime as _dt

    parsed = _parse(iso) if iso else None
    if parsed is None:
        return "-"
    seconds = int(((now or _dt.datetime.now(_dt.UTC)) - parsed).total_seconds())
    if seconds < 0:
        return "in the future"  # another machine's clock; said rather than hidden
    if seconds < 45:
        return "just now"
    for unit, length in (
        ("year", 365 * 86400),
        ("month", 30 * 86400),
        ("week", 7 * 86400),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if seconds >= length:
            n = round(seconds / length) if unit == "minute" else seconds // length
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "1 minute ago"


def value(v: object) -> str:
    """A field's value for people: ``true``/``false`` (not Python's), ``-`` for nothing."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# -- tables ------------------------------------------------------------------------------------


# Lines handed to one write: a write (and flush) per line cost a 100k-row ``ls SPEC`` a second.
_LINES_PER_WRITE = 4096


def table(
    rows: Sequence[Sequence[str]],
    header: Sequence[str] | None = None,
    right: frozenset[int] = frozenset(),
    indent: str = "",
) -> None:
    """Print rows as columns two spaces apart, under ``header`` (bold on a colour terminal).

    Columns in ``right`` are right-aligned (sizes, counts). Cells are escaped before they are
    measured, so a name holding control characters neither forges a row nor breaks alignment.
    """
    if not rows:
        return
    shown = _escaped(rows)
    head = [printable(h) for h in header] if header is not None else None
    every = [*shown, head] if head is not None else shown
    columns = len(every[0])
    if any(len(row) != columns for row in every):
        raise ValueError("every row of a table has as many cells as the first")
    widths = [max(map(len, map(operator.itemgetter(i), every))) for i in range(columns)]
    # One format for every row: a row is laid out by one call in C, padded as ljust/rjust do.
    form = "  ".join(f"{{:{'>' if i in right else '<'}{w}}}" for i, w in enumerate(widths))
    if head is not None:
        echo(style((indent + form.format(*head)).rstrip(), bold=True))
    lines = [(indent + form.format(*row)).rstrip() for row in shown]
    for start in range(0, len(lines), _LINES_PER_WRITE):
        echo("\n".join(lines[start : start + _LINES_PER_WRITE]))


def _escaped(rows: Sequence[Sequence[str]]) -> Sequence[Sequence[str]]:
    """``rows`` with every cell through :func:`printable`; the rows themselves when no cell
    holds a character to escape, told by one search over all the cells joined (the pattern
    matches single characters, so joining makes no match that a cell alone would not)."""
    if _UNSAFE.search("".join(itertools.chain.from_iterable(rows))) is None:
        return rows
    return [[printable(cell) for cell in row] for row in rows]


# -- progress ----------------------------------------------------------------------------------

Tick = Callable[[int], None]


def progress_allowed() -> bool:
    """Progress is drawn on a terminal's stderr only, and never with ``-q``."""
    return is_terminal(sys.stderr) and not quiet()


@contextlib.contextmanager
def byte_progress(
    label: str, total: Callable[[], int | None], *, minimum: int = PROGRESS_MIN_BYTES
) -> Iterator[Tick | None]:
    """A callback taking byte counts, drawing bytes, rate and ETA on stderr; None when piped.

    ``total`` is only called when a bar may be drawn, so piped runs pay nothing for it; a None
    total (not known in advance) shows bytes and rate without an ETA. tqdm is imported here, not
    at startup.
    """
    if not progress_allowed():
        yield None
        return
    expected = total()
    if expected is not None and expected < minimum:
        yield None
        return
    with _bar(label, expected) as bar:

        def tick(n: int) -> None:
            bar.update(n)

        yield tick


# Bytes with their unit on both sides ("8.00MiB/300MiB"): tqdm's default shows it on the rate only.
_KNOWN_TOTAL = (
    "{l_bar}{bar}| {n_fmt}{unit}/{total_fmt}{unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


@contextlib.contextmanager
def _bar(
    label: str, total: int | None, delay: float = 0.0, file: Any = None
) -> Iterator[tqdm[Any]]:
    from tqdm import tqdm

    bar: tqdm[Any] = tqdm(
        total=total,
        desc=label,
        unit="iB",  # with unit_divisor 1024: KiB, MiB, GiB, as size() writes them
        unit_scale=True,
        unit_divisor=1024,
        file=file if file is not None else sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
        bar_format=_KNOWN_TOTAL if total is not None else None,
        leave=True,
        delay=delay,
    )
    try:
        yield bar
    finally:
        bar.close()


def _io_counts(skip: int | None = None) -> tuple[int, int] | None:
    """Bytes the threads of this process have read and written (``rchar``, ``wchar``), or None.

    Summed over ``/proc/self/task/*/io`` rather than read from ``/proc/self/io``, which also
    adds what reaped children did: git receive-pack's copy of the pack would count twice.
    Thread ``skip`` (the sampler, reading /proc and drawing the bar) is left out.
    """
    read = written = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tasks:
        if skip is not None and tid == str(skip):
            continue
        try:
            with open(f"/proc/self/task/{tid}/io", "rb") as f:
                for line in f:
                    if line.startswith(b"rchar:"):
                        read += int(line.split()[1])
                    elif line.startswith(b"wchar:"):
                        written += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return read, written


def _folder_bytes(path: str) -> int | None:
    """Bytes of the files in ``path`` and its ``pack/`` folder (where a fetched pack lands)."""
    total = 0
    try:
        for folder in (path, os.path.join(path, "pack")):
            with os.scandir(folder) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        if entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        return None
    return total


class _Counted:
    """stderr, counting what the bar writes from threads other than the sampler (which is left
    out of the counts anyway), so that drawing is not taken for the transfer."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.written = 0
        self.sampler: int | None = None

    def write(self, text: str) -> int:
        import threading

        if threading.get_native_id() != self.sampler:
            self.written += len(text.encode("utf-8", "replace"))
        return int(self.stream.write(text) or 0)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return is_terminal(self.stream)

    def fileno(self) -> int:
        return int(self.stream.fileno())


class Transfer:
    """What :func:`io_progress` yields: called with the transfer's text lines (shown after the
    bar); :meth:`expect` gives it the bytes the transfer will move once that is known (a push
    that has counted its objects), turning the open-ended count into a bar with an ETA."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self.bar = bar

    def __call__(self, text: str) -> None:
        self.bar.set_postfix_str(printable(text)[:48], refresh=True)

    def expect(self, total: int) -> None:
        """The transfer's expected size in bytes: the bar shows done of it, and an ETA."""
        self.bar.total = total
        self.bar.bar_format = _KNOWN_TOTAL
        self.bar.refresh()


@contextlib.contextmanager
def io_progress(
    label: str, receiving_into: str | os.PathLike[str] | None = None
) -> Iterator[Transfer | None]:
    """Progress of a transfer whose size is not known in advance (push, pull, bundle, gc).

    Yields a :class:`Transfer` (a callback for the transfer's text lines, shown after the bar,
    whose ``expect`` sets the total once it is known: a push that has counted its objects), or
    None when stderr is not a terminal. A thread samples five times a second: the bar counts, with
    ``receiving_into`` (a store's ``objects`` folder: pull, clone, bundle import), the growth of
    that folder, where the received pack lands; otherwise the bytes this process's threads write
    (``/proc/self/task/*/io``): the pack a push sends into its pipe or socket, a bundle or pack
    written. The label adds what they have read, so the phases that only read (a push scanning
    what it sends for secrets, a pull receiving before indexing) show activity too. No library
    call needs changing for it, and a piped run pays nothing (no thread starts). Where /proc cannot
    be read only the text lines are shown.
    """
    if not progress_allowed():
        yield None
        return
    import threading

    err = _Counted(sys.stderr)
    folder = os.fspath(receiving_into) if receiving_into is not None else None
    first = _io_counts()

    def moved(counts: tuple[int, int] | None) -> int | None:
        if folder is not None:
            return _folder_bytes(folder)
        return None if counts is None else counts[1] - err.written

    start = moved(first)
    if folder is not None and start is None:
        start = 0  # the store (or its objects folder) is made by the transfer itself
    done = threading.Event()
    with _bar(label, None, delay=0.5, file=err) as bar:
        seen = 0

        def sample() -> None:
            nonlocal seen
            counts = _io_counts(skip=err.sampler)
            now = moved(counts)
            if counts is not None and first is not None and counts[0] > first[0]:
                bar.set_description_str(f"{label} (read {size(counts[0] - first[0])})", False)
            if now is not None and start is not None:
                moved_now = now - start
                if bar.total is not None:
                    # Held at the expected total: the commands and framing around a pushed pack
                    # add a few bytes, and tqdm drops a total that is passed (no % nor ETA).
                    moved_now = min(moved_now, int(bar.total))
                if moved_now > seen:
                    bar.update(moved_now - seen)
                    seen = moved_now

        def sampling() -> None:
            err.sampler = threading.get_native_id()
            waited = 0
            while not done.wait(0.2):
                sample()
                waited += 1
                if waited > 2:  # past tqdm's delay: show phases that only read, too
                    bar.refresh()

        thread = threading.Thread(target=sampling, name="gitstore-progress", daemon=True)
        if start is not None:
            thread.start()
        try:
            yield Transfer(bar)
        finally:
            done.set()
            if thread.is_alive():
                thread.join()
            sample()  # the last bytes, so the line left on screen shows the whole transfer
            bar.refresh()  # drawn even within tqdm's mininterval or delay
