"""What the web page makes of an artifact's bytes: log lines, diffs, test results, JSON trees.

Pure functions of bytes and strings (no store, no request), so each is tested on its own. Every
piece of HTML built here escapes the text it was given (``markupsafe.escape``) before wrapping it
in tags of its own, and only tags and class names of this module's choosing come out: an
artifact full of ``<script>`` is shown as text. No ``style`` attribute is ever written either:
colours are class names, so the page's Content-Security-Policy needs no ``'unsafe-inline'``.

* :func:`render_line`: one line of a log, ANSI SGR colours as classes (other escape sequences
  dropped), control characters as visible symbols, a carriage return inside a line showing what
  a terminal ends up showing (the text after it).
* :func:`parse_diff`: a unified diff (``git diff``, ``diff -u``) as files, hunks and numbered
  lines, syntax-highlighted with Pygments where the file's language is known.
* :func:`parse_tests`: test results from the shapes runners write (pytest-json-report, a plain
  ``{"passed": 3, "failed": 1}`` dict, JUnit XML) as counts and cases, failing ones first.
* :func:`json_tree`: JSON as nested ``<details>``, foldable, capped in nodes and depth.
* :func:`line_diff`: two texts' unified line diff (difflib), capped, for comparing versions.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from markupsafe import Markup, escape
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_for_filename
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

__all__ = [
    "Case",
    "DiffLine",
    "DiffView",
    "FileDiff",
    "Hunk",
    "TestReport",
    "UriLinker",
    "failure_summary",
    "human_size",
    "is_binary",
    "json_tree",
    "line_diff",
    "linkify",
    "parse_diff",
    "parse_tests",
    "render_line",
    "strip_ansi",
    "visible",
]

# A gitstore:// URI in running text: stops at whitespace, quotes and angle brackets.
_URI = re.compile(r"gitstore://[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*@[^\s\"'<>`]+")
UriLinker = Callable[[str], str | None]  # a URI -> the page's link for it, or None


def human_size(n: int) -> str:
    """``1.5 MiB``: binary units, one decimal above a KiB."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n_f = n / 1024
        if n_f < 1024 or unit == "TiB":
            return f"{n_f:.1f} {unit}"
        n = int(n_f)
    raise AssertionError("unreachable")


def is_binary(head: bytes) -> bool:
    """True when the first bytes of an artifact hold a NUL byte (git's rule for binary)."""
    return b"\x00" in head[:8000]


# -- text ------------------------------------------------------------------------------------

# C0 controls (tab and newline aside) and DEL become the Unicode "control pictures": visible,
# never acted on by a terminal someone pastes them into.
_CONTROLS = {c: chr(0x2400 + c) for c in range(32) if c not in (9, 10)}
_CONTROLS[0x7F] = "\u2421"
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def visible(text: str) -> str:
    """``text`` with control characters (tab and newline aside) shown as symbols (``␀``, ``␛``)."""
    return _CONTROL_RE.sub(lambda m: _CONTROLS[ord(m.group())], text)


def linkify(text: str, link: UriLinker | None) -> Markup:
    """``text`` escaped, each ``gitstore://`` URI in it a link to its page (if ``link`` knows)."""
    if link is None or "gitstore://" not in text:
        return escape(text)
    out: list[str] = []
    pos = 0
    for m in _URI.finditer(text):
        uri = m.group().rstrip(".,;:)]}")
        href = link(uri)
        if href is None:
            continue
        out.append(escape(text[pos : m.start()]))
        out.append(Markup('<a href="{}">{}</a>').format(href, uri))
        pos = m.start() + len(uri)
    out.append(escape(text[pos:]))
    return Markup("").join(out)


# -- ANSI ------------------------------------------------------------------------------------

# CSI (ESC [ params intermediates final), OSC (ESC ] ... BEL or ST), DCS and the like, character
# set and two-byte sequences. Only SGR (CSI ... m) means anything here; the rest is dropped. An
# ESC that starts none of these stays, shown as a symbol.
_ESCAPE = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[()*+#%][0-~]"  # character sets (tput sgr0 writes ESC ( B)
    r"|\x1b[0-~]"  # two-byte sequences: ESC 7, ESC M, ESC = ...
)
# The 16 colours in order (0-7 normal, 8-15 bright); a 256-colour or RGB colour is shown as the
# nearest of them, because the page's classes are all the colours it has.
_RGB16 = [
    (0, 0, 0),
    (205, 49, 49),
    (13, 188, 121),
    (229, 229, 16),
    (36, 114, 200),
    (188, 63, 188),
    (17, 168, 205),
    (229, 229, 229),
    (102, 102, 102),
    (241, 76, 76),
    (35, 209, 139),
    (245, 245, 67),
    (59, 142, 234),
    (214, 112, 214),
    (41, 184, 219),
    (255, 255, 255),
]


def _nearest16(rgb: tuple[int, int, int]) -> int:
    return min(
        range(16), key=lambda i: sum((a - b) ** 2 for a, b in zip(rgb, _RGB16[i], strict=True))
    )


def _color256(n: int) -> int:
    if n < 16:
        return n
    if n < 232:
        n -= 16
        levels = (0, 95, 135, 175, 215, 255)
        return _nearest16((levels[n // 36], levels[n // 6 % 6], levels[n % 6]))
    grey = 8 + (n - 232) * 10
    return _nearest16((grey, grey, grey))


@dataclasses.dataclass
class _Style:
    fg: int | None = None
    bg: int | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False

    def classes(self) -> str:
        out = []
        if self.fg is not None:
            out.append(f"a-f{self.fg}")
        if self.bg is not None:
            out.append(f"a-b{self.bg}")
        for flag in ("bold", "dim", "italic", "underline"):
            if getattr(self, flag):
                out.append(f"a-{flag}")
        return " ".join(out)

    def apply(self, params: str) -> None:
        codes = [int(p) if p.isdigit() else 0 for p in re.split(r"[;:]", params)] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.fg = self.bg = None
                self.bold = self.dim = self.italic = self.underline = False
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif 30 <= c <= 37:
                self.fg = c - 30
            elif 90 <= c <= 97:
                self.fg = c - 90 + 8
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = c - 40
            elif 100 <= c <= 107:
                self.bg = c - 100 + 8
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                color: int | None = None
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    color = _color256(min(codes[i + 2], 255))
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    rgb = (codes[i + 2], codes[i + 3], codes[i + 4])
                    color = _nearest16(tuple(min(v, 255) for v in rgb))  # type: ignore[arg-type]
                    i += 4
                if c == 38:
                    self.fg = color
                else:
                    self.bg = color
            i += 1


def strip_ansi(text: str) -> str:
    """``text`` without escape sequences (what search compares)."""
    return _ESCAPE.sub("", text)


def render_line(
    raw: bytes, link: UriLinker | None = None, style: _Style | None = None
) -> tuple[Markup, _Style]:
    """One log line (without its newline) as HTML, and the ANSI style in force at its end.

    ``style`` carries colours over from the line before (a colour set on one line holds until
    reset, as in a terminal). Bytes that are not UTF-8 show as U+FFFD.
    """
    text = raw.decode("utf-8", "replace")
    if text.endswith("\r"):
        text = text[:-1]  # CRLF
    style = dataclasses.replace(style) if style is not None else _Style()
    if "\x1b" not in text and "\r" not in text and not style.classes():
        return linkify(visible(text), link), style  # the common line: no colour, no bar
    out: list[str] = []

    def emit(piece: str) -> None:
        if "\r" in piece:
            # What a terminal ends up showing: a progress bar's last state, not every state.
            out.clear()
            piece = piece.rsplit("\r", 1)[1]
        if not piece:
            return
        html = str(linkify(visible(piece), link))
        classes = style.classes()  # class names of this module's making only
        out.append(f'<span class="{classes}">{html}</span>' if classes else html)

    pos = 0
    for m in _ESCAPE.finditer(text):
        emit(text[pos : m.start()])
        if m.group(2) == "m":
            style.apply(m.group(1))
        pos = m.end()
    emit(text[pos:])
    return Markup("".join(out)), style


# -- diffs -----------------------------------------------------------------------------------

MAX_DIFF_LINES = 20_000  # rendered lines at most; the rest is cut with a note
MAX_HIGHLIGHT_LINES = 4_000  # per file: past this, a file is shown without colours
# Per diff: Pygments lexes ~10,000 lines a second here; past this many, files stay plain.
MAX_HIGHLIGHT_TOTAL = 8_000
MAX_HIGHLIGHT_WIDTH = 1_000  # a line this long (minified code) turns highlighting off


@dataclasses.dataclass
class DiffLine:
    """One line of a hunk: ``kind`` is ``add``, ``del``, ``ctx`` or ``note`` (``\\ No newline``)."""

    kind: str
    old: int | None
    new: int | None
    text: str
    html: str = ""  # filled by FileDiff.rendered_hunks(): escaped and highlighted HTML

    @property
    def sign(self) -> str:
        """The character the line starts with in the diff."""
        return {"add": "+", "del": "-", "ctx": " "}.get(self.kind, "")


@dataclasses.dataclass
class Hunk:
    """``@@ -a,b +c,d @@ section`` and its lines."""

    header: str
    lines: list[DiffLine] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FileDiff:
    """One file of a diff."""

    old: str | None
    new: str | None
    meta: list[str] = dataclasses.field(default_factory=list)
    hunks: list[Hunk] = dataclasses.field(default_factory=list)
    added: int = 0
    removed: int = 0
    language: str | None = None
    highlight: bool = False
    _rendered: bool = False

    def rendered_hunks(self) -> list[Hunk]:
        """The hunks with every line's ``html`` filled in (highlighted on first use).

        Lazy so that a page can stream: the first files reach the browser while later ones
        are still being lexed.
        """
        if not self._rendered:
            if self.highlight:
                _highlight_file(self)
            for h in self.hunks:
                for dl in h.lines:
                    if not dl.html:
                        dl.html = escape(visible(dl.text))
            self._rendered = True
        return self.hunks

    @property
    def path(self) -> str:
        """The file's name: the new one, or the old one for a deletion."""
        return self.new or self.old or "(unnamed)"

    @property
    def status(self) -> str:
        """``added``, ``deleted``, ``renamed``, ``binary`` or ``modified``."""
        if any(m.startswith(("Binary files", "GIT binary patch")) for m in self.meta):
            return "binary"
        if self.old is None or any(m.startswith("new file mode") for m in self.meta):
            return "added"
        if self.new is None or any(m.startswith("deleted file mode") for m in self.meta):
            return "deleted"
        if self.old != self.new:
            return "renamed"
        return "modified"


@dataclasses.dataclass
class DiffView:
    """A parsed diff: text before the first file (a patch's message), the files, what was cut."""

    preamble: list[str]
    files: list[FileDiff]
    lines: int
    cut: bool

    @property
    def added(self) -> int:
        """Lines added over all files."""
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        """Lines removed over all files."""
        return sum(f.removed for f in self.files)


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADER = re.compile(r"diff --git (?:\"?a/)?(.*?)\"? (?:\"?b/)?(.*?)\"?\Z")


def _diff_path(value: str) -> str | None:
    path = value.split("\t", 1)[0].strip()
    if path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    if path == "/dev/null":
        return None
    for prefix in ("a/", "b/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def parse_diff(text: str, *, highlight: bool = True, max_lines: int = MAX_DIFF_LINES) -> DiffView:
    """A unified diff as files and hunks with numbered, highlighted lines.

    Lines past ``max_lines`` are not parsed (the view says it was cut). Text that is not a diff
    comes back as a preamble with no files.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cut = len(lines) > max_lines
    lines = lines[:max_lines]
    preamble: list[str] = []
    files: list[FileDiff] = []
    current: FileDiff | None = None
    hunk: Hunk | None = None
    old_left = new_left = 0
    old_no = new_no = 0
    for raw in lines:
        line = raw[:-1] if raw.endswith("\r") else raw
        if hunk is not None and (old_left > 0 or new_left > 0):
            kind = {"+": "add", "-": "del", " ": "ctx", "\\": "note"}.get(line[:1], "ctx")
            if line == "":
                kind = "ctx"  # some tools drop the space of an empty context line
            body = line[1:]
            if kind == "add":
                hunk.lines.append(DiffLine("add", None, new_no, body))
                new_no += 1
                new_left -= 1
                assert current is not None
                current.added += 1
            elif kind == "del":
                hunk.lines.append(DiffLine("del", old_no, None, body))
                old_no += 1
                old_left -= 1
                assert current is not None
                current.removed += 1
            elif kind == "ctx":
                hunk.lines.append(DiffLine("ctx", old_no, new_no, body))
                old_no += 1
                new_no += 1
                old_left -= 1
                new_left -= 1
            else:
                hunk.lines.append(DiffLine("note", None, None, line))
            continue
        if hunk is not None and line.startswith("\\"):
            hunk.lines.append(DiffLine("note", None, None, line))
            continue
        m = _HUNK.match(line)
        if m and current is not None:
            hunk = Hunk(line)
            current.hunks.append(hunk)
            old_no, new_no = int(m.group(1)), int(m.group(3))
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
            continue
        if line.startswith("diff --git ") or line.startswith("diff -"):
            hunk = None
            g = _GIT_HEADER.match(line)
            current = FileDiff(_diff_path(g.group(1)) if g else None, None)
            if g:
                current.new = _diff_path(g.group(2))
            current.meta.append(line)
            files.append(current)
            continue
        if line.startswith("--- ") and (current is None or current.hunks or hunk is not None):
            # A plain unified diff (no "diff" line) starts a file at its "---".
            hunk = None
            current = FileDiff(_diff_path(line[4:]), None)
            files.append(current)
            continue
        if current is not None and not current.hunks:
            if line.startswith("--- "):
                current.old = _diff_path(line[4:])
                continue
            if line.startswith("+++ "):
                current.new = _diff_path(line[4:])
                continue
            if line.startswith("rename from "):
                current.old = line[len("rename from ") :]
            elif line.startswith("rename to "):
                current.new = line[len("rename to ") :]
            current.meta.append(line)
            continue
        if current is None:
            preamble.append(line)
        else:
            # Text between files or after a hunk ends (a trailer, a signature): keep it visible.
            current.meta.append(line)
            hunk = None
    budget = MAX_HIGHLIGHT_TOTAL if highlight else 0
    for f in files:
        count = sum(len(h.lines) for h in f.hunks)
        if f.hunks and count <= min(budget, MAX_HIGHLIGHT_LINES):
            lexer = _lexer(f.path)
            if lexer is not None:
                f.highlight = True
                f.language = lexer.name
                budget -= count
    return DiffView(preamble, files, min(len(lines), max_lines), cut)


def _lexer(path: str) -> Lexer | None:
    base = path.rsplit("/", 1)[-1]
    return _lexer_for(base if "." not in base else "x." + base.rsplit(".", 1)[1])


@functools.lru_cache(maxsize=256)
def _lexer_for(name: str) -> Lexer | None:
    # Finding a lexer by name scans every lexer's patterns (~5 ms); a lexer object keeps no state
    # between get_tokens calls, so one per file kind serves every diff.
    try:
        return get_lexer_for_filename(name, stripnl=False, stripall=False, ensurenl=False)
    except ClassNotFound:
        return None


def _highlight_file(f: FileDiff) -> None:
    lexer = _lexer(f.path)
    if lexer is None:
        return
    for h in f.hunks:
        old_side = [dl for dl in h.lines if dl.kind in ("ctx", "del")]
        new_side = [dl for dl in h.lines if dl.kind in ("ctx", "add")]
        if any(len(dl.text) > MAX_HIGHLIGHT_WIDTH for dl in h.lines):
            continue
        # Each side is lexed as one text, so a string or comment spanning lines stays coloured.
        old_html = highlight_lines([d.text for d in old_side], lexer)
        for dl, html in zip(old_side, old_html, strict=True):
            if dl.kind == "del":
                dl.html = html
        new_html = highlight_lines([d.text for d in new_side], lexer)
        for dl, html in zip(new_side, new_html, strict=True):
            dl.html = html


def _token_class(ttype: Any) -> str:  # a pygments token type (its class is private)
    while ttype not in STANDARD_TYPES and ttype.parent is not None:
        ttype = ttype.parent
    return STANDARD_TYPES.get(ttype, "")


def highlight_lines(lines: Sequence[str], lexer: Lexer) -> list[Markup]:
    """``lines`` lexed together, as one piece of HTML per line (token classes of Pygments)."""
    # Pygments reads a lone \r as a line end: make every control character visible first, so
    # the lines that come out are the lines that went in.
    text = "\n".join(visible(line) for line in lines) + "\n"
    # Plain string building: Markup.format costs more than the lexing itself. Every piece of
    # text goes through escape(); class names come from Pygments' fixed table.
    out: list[list[str]] = [[]]
    for ttype, value in lexer.get_tokens(text):
        cls = _token_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                out.append([])
            if part:
                html = str(escape(part))
                out[-1].append(f'<span class="{cls}">{html}</span>' if cls else html)
    joined = [Markup("".join(parts)) for parts in out[: len(lines)]]
    joined += [Markup("")] * (len(lines) - len(joined))
    return joined


def line_diff(
    old: str, new: str, old_name: str, new_name: str, *, max_lines: int = 5000
) -> tuple[str, bool]:
    """The unified diff of two texts (difflib, 3 lines of context) and whether it was cut.

    Each side is compared up to ``max_lines`` lines (difflib's matching is quadratic at worst).
    """
    a = old.splitlines()
    b = new.splitlines()
    cut = len(a) > max_lines or len(b) > max_lines
    diff = difflib.unified_diff(
        a[:max_lines], b[:max_lines], f"a/{old_name}", f"b/{new_name}", lineterm=""
    )
    return "\n".join(diff) + "\n", cut


# -- test results ----------------------------------------------------------------------------

# Outcome words as runners spell them -> the word this page uses; the order is the table's.
_OUTCOMES = {
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "failures": "failed",
    "error": "error",
    "errors": "error",
    "errored": "error",
    "xpassed": "xpassed",
    "skipped": "skipped",
    "skip": "skipped",
    "skips": "skipped",
    "xfailed": "xfailed",
    "passed": "passed",
    "pass": "passed",
    "ok": "passed",
    "success": "passed",
    "succeeded": "passed",
}
_ORDER = ["failed", "error", "xpassed", "skipped", "xfailed", "passed"]  # cases, failing first
_COUNT_ORDER = ["failed", "error", "passed", "xpassed", "skipped", "xfailed"]
MAX_CASES = 5000
MAX_MESSAGE = 4000


@dataclasses.dataclass
class Case:
    """One test: its name, outcome (a word of :data:`_ORDER`), duration and failure text."""

    name: str
    outcome: str
    duration: float | None = None
    message: str = ""

    @property
    def failing(self) -> bool:
        """True for ``failed`` and ``error``."""
        return self.outcome in ("failed", "error")


@dataclasses.dataclass
class TestReport:
    """Test results: counts per outcome and the cases (failing first), from ``source``'s shape."""

    source: str
    counts: dict[str, int]
    cases: list[Case]
    cases_cut: int = 0

    __test__ = False  # not a pytest class, whatever its name

    @property
    def failed(self) -> int:
        """Failed plus errors."""
        return self.counts.get("failed", 0) + self.counts.get("error", 0)

    @property
    def status(self) -> str | None:
        """``failed`` (any failure or error), ``passed`` (some passed) or None (nothing ran)."""
        if self.failed:
            return "failed"
        if self.counts.get("passed", 0) or self.counts.get("xfailed", 0):
            return "passed"
        return None

    @property
    def rows(self) -> list[tuple[str, int]]:
        """(outcome, count), what went wrong first, then what went right; counts above 0 only."""
        return [(o, self.counts[o]) for o in _COUNT_ORDER if self.counts.get(o)]

    @property
    def summary(self) -> str:
        """``2 failed, 41 passed, 1 skipped``."""
        return ", ".join(f"{n} {o}" for o, n in self.rows)


def _outcome(value: object) -> str | None:
    if isinstance(value, bool):
        return "passed" if value else "failed"
    if not isinstance(value, str):
        return None
    return _OUTCOMES.get(value.strip().lower())


def _message(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        # pytest-json-report: {"crash": {"message"}, "longrepr": "..."} under "call"
        text = str(
            value.get("longrepr")
            or (value.get("crash") or {}).get("message", "")
            or value.get("message")
            or ""
        )
    else:
        text = json.dumps(value)
    return text[:MAX_MESSAGE] + ("\n[cut]" if len(text) > MAX_MESSAGE else "")


def _finish(source: str, counts: dict[str, int], cases: list[Case]) -> TestReport:
    rank = {o: i for i, o in enumerate(_ORDER)}
    cases.sort(key=lambda c: rank.get(c.outcome, len(_ORDER)))  # stable: runner's order within
    cut = max(0, len(cases) - MAX_CASES)
    return TestReport(source, counts, cases[:MAX_CASES], cut)


def _count(cases: Sequence[Case]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in cases:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    return counts


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return max(0, int(value))


def _from_json(doc: Any) -> TestReport | None:
    if not isinstance(doc, dict):
        return None
    tests = doc.get("tests")
    if isinstance(tests, list) and tests and all(isinstance(t, dict) for t in tests):
        cases = []
        for t in tests:
            outcome = _outcome(t.get("outcome", t.get("status", t.get("result"))))
            if outcome is None:
                continue
            name = t.get("nodeid") or t.get("name") or t.get("id") or "(unnamed)"
            duration = _number_f(t.get("duration"))
            message = ""
            for phase in ("setup", "call", "teardown"):
                step = t.get(phase)
                if not isinstance(step, dict):
                    continue
                if phase == "call" and duration is None:
                    duration = _number_f(step.get("duration"))
                if not message and _outcome(step.get("outcome")) in ("failed", "error"):
                    message = _message(step)
            if not message:
                message = _message(t.get("message") or t.get("longrepr") or t.get("error"))
            cases.append(Case(str(name), outcome, duration, message))
        if cases:
            counts = _counts_of(doc.get("summary")) or _count(cases)
            return _finish("pytest-json-report" if "summary" in doc else "JSON", counts, cases)
    counts = _counts_of(doc.get("summary")) or _counts_of(doc)
    if not counts:
        return None
    cases = []
    for key, value in doc.items():
        outcome = _OUTCOMES.get(str(key).lower())
        if outcome and isinstance(value, list):
            cases += [Case(str(v) if not isinstance(v, dict) else _name(v), outcome) for v in value]
    return _finish("JSON counts", counts, cases)


def _name(value: dict[str, Any]) -> str:
    return str(value.get("nodeid") or value.get("name") or value.get("id") or json.dumps(value))


def _number_f(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _counts_of(doc: object) -> dict[str, int]:
    """``{"passed": 3, "failed": [..names..]}`` -> counts by outcome (lists count their items)."""
    if not isinstance(doc, dict):
        return {}
    counts: dict[str, int] = {}
    for key, value in doc.items():
        outcome = _OUTCOMES.get(str(key).lower())
        if outcome is None:
            continue
        n = len(value) if isinstance(value, list) else _number(value)
        if n is not None:
            counts[outcome] = counts.get(outcome, 0) + n
    return counts


def _from_junit(data: bytes) -> TestReport | None:
    try:
        # expat expands no external entity and refuses entity expansion bombs (2.4.1 and
        # later); the caller caps the size.
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError):
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    cases = []
    for tc in root.iter("testcase"):
        name = tc.get("name", "(unnamed)")
        if tc.get("classname"):
            name = f"{tc.get('classname')}::{name}"
        outcome, message = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = "\n".join(x for x in (child.get("message"), child.text) if x)
                break
            if child.tag == "skipped":
                outcome = "skipped"
                message = child.get("message") or child.text or ""
        try:
            duration: float | None = float(tc.get("time", ""))
        except ValueError:
            duration = None
        cases.append(Case(name, outcome, duration, _message(message.strip())))
    if not cases:
        counts: dict[str, int] = {}
        for suite in [root, *root.iter("testsuite")]:
            tests = _int(suite.get("tests"))
            bad = {k: _int(suite.get(k)) for k in ("failures", "errors", "skipped")}
            if tests:
                counts["passed"] = counts.get("passed", 0) + max(0, tests - sum(bad.values()))
                for key, word in (
                    ("failures", "failed"),
                    ("errors", "error"),
                    ("skipped", "skipped"),
                ):
                    counts[word] = counts.get(word, 0) + bad[key]
            if suite is root and tests:
                break
        return _finish("JUnit XML", {k: v for k, v in counts.items() if v}, []) if counts else None
    return _finish("JUnit XML", _count(cases), cases)


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def parse_tests(data: bytes) -> TestReport | None:
    """Test results in ``data`` (JSON or JUnit XML), or None when it holds none this page knows."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return _from_junit(data)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return _from_json(doc)


def failure_summary(doc: object) -> dict[str, str] | None:
    """``kind``, ``type`` and ``message`` of a ``failure.json`` as the runner layer writes it."""
    if not isinstance(doc, dict) or not any(k in doc for k in ("kind", "type", "message")):
        return None
    return {k: str(doc.get(k) or "") for k in ("kind", "type", "message", "traceback")}


# -- JSON ------------------------------------------------------------------------------------

MAX_JSON_NODES = 5000
MAX_JSON_DEPTH = 64
OPEN_DEPTH = 2  # levels shown unfolded


def json_tree(value: Any, link: UriLinker | None = None) -> tuple[Markup, bool]:
    """``value`` as nested ``<details>`` (objects and arrays foldable), and whether it was cut.

    At most :data:`MAX_JSON_NODES` values are shown; past :data:`MAX_JSON_DEPTH` levels a value
    is shown as compact JSON text.
    """
    budget = [MAX_JSON_NODES]
    parts: list[str] = []
    cut = _tree(value, None, 0, parts, budget, link)
    return Markup("".join(parts)), cut


def _scalar(value: Any, link: UriLinker | None) -> Markup:
    if isinstance(value, str):
        return Markup('<span class="j-s">"{}"</span>').format(linkify(visible(value), link))
    if value is None or isinstance(value, bool):
        return Markup('<span class="j-k">{}</span>').format(json.dumps(value))
    return Markup('<span class="j-n">{}</span>').format(json.dumps(value))


def _tree(
    value: Any,
    key: str | None,
    depth: int,
    out: list[str],
    budget: list[int],
    link: UriLinker | None,
) -> bool:
    """Append ``value`` (under ``key``) to ``out``; True if anything was left out."""
    label = (
        Markup('<span class="j-key">{}</span>: ').format(visible(key)) if key is not None else ""
    )
    budget[0] -= 1
    if budget[0] < 0:
        return True
    if not isinstance(value, (dict, list)):
        out.append(Markup("<li>{}{}</li>").format(label, _scalar(value, link)))
        return False
    if depth >= MAX_JSON_DEPTH:
        try:
            text = json.dumps(value)
        except RecursionError:
            text = "(nested too deeply to show)"
        out.append(Markup('<li>{}<code class="j-deep">{}</code></li>').format(label, text[:2000]))
        return len(text) > 2000
    items: Iterator[tuple[str | None, Any]]
    if isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
        brackets, what = "{}", f"{len(value)} key{'s' if len(value) != 1 else ''}"
    else:
        items = ((None, v) for v in value)
        brackets, what = "[]", f"{len(value)} item{'s' if len(value) != 1 else ''}"
    if not value:
        out.append(Markup('<li>{}<span class="j-p">{}</span></li>').format(label, brackets))
        return False
    opened = " open" if depth < OPEN_DEPTH else ""
    out.append(
        Markup(
            '<li><details{}><summary>{}<span class="j-p">{}</span> <span class="j-c">{}</span>'
            "</summary><ul>"
        ).format(Markup(opened), label, brackets[0], what)
    )
    cut = False
    for k, v in items:
        if budget[0] <= 0:
            cut = True
            out.append(Markup('<li class="j-cut">… (more not shown)</li>'))
            break
        cut = _tree(v, k, depth + 1, out, budget, link) or cut
    out.append(Markup('</ul><span class="j-p">{}</span></details></li>').format(brackets[1]))
    return cut
