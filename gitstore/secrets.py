"""Secret masking: secrets never reach the store by accident.

:class:`Masker` replaces secrets in text with ``***MASKED***`` and counts what it replaced (the
count is recorded, never the secrets). What it masks:

* values of environment variables whose names contain PASSWORD, SECRET, TOKEN, API_KEY, KEY or
  CREDENTIAL, when the value has at least 8 characters (shorter ones would mask ordinary words);
* literal secrets the caller passes;
* well-known token shapes: ``Bearer ...``, ``api_key=`` / ``token=`` / ``password=`` / ``secret=``
  assignments (also ``"password": "..."`` in JSON), GitHub tokens (``ghp_``, ``gho_``, ``ghu_``,
  ``ghs_``, ``ghr_``, ``github_pat_``), AWS access key ids (``AKIA``/``ASIA`` + 16), Slack tokens
  (``xox?-``), JWTs, PEM private key blocks, and credentials inside URLs (``https://user:pass@host``).

Masking streams: input is read in chunks cut at line ends, so memory stays bounded whatever the
size; a PEM block that spans chunks is carried over until its END line (or until
:data:`MAX_CARRY` bytes, past which the whole carried text is masked: a cut is never silent). A
line longer than :data:`MAX_CARRY` is cut where no secret-shaped string straddles the cut (see
:meth:`Masker._long_line_cut`). Only keys and separators around a masked value are kept
(``password=***MASKED***``), so a reader still sees what was there.

One rule says what is binary (:func:`is_binary`), for every reader: put's masking
(:meth:`Masker.mask_content`), the runner's capture, ``gitstore scan`` and push
(:meth:`Masker.scan_content`). Binary content is copied as is and not scanned.

Fields are text too: :func:`field_texts` says how a JSON-like value (a message, metadata, tags)
is read, ``KEY=VALUE`` for each leaf, so that ``token: abc`` in metadata is the same secret as
``token=abc`` in a log; :meth:`Masker.mask_value` masks such a value the same way, so what put
masked is what a scan finds clean.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from gitstore._io import Prefixed
from gitstore.errors import UsageError

__all__ = [
    "BINARY_WINDOW",
    "ENV_NAME_PARTS",
    "MASK",
    "FieldPath",
    "LONG_LINE_OVERLAP",
    "MIN_ENV_VALUE",
    "Finding",
    "Masker",
    "field_texts",
    "is_binary",
    "read_head",
]

MASK = b"***MASKED***"
ENV_NAME_PARTS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "KEY", "CREDENTIAL")
MIN_ENV_VALUE = 8
CHUNK = 1 << 20
# A PEM block longer than this is not a key: mask what was carried rather than hold more.
MAX_CARRY = 1 << 20
# A line longer than MAX_CARRY is cut this far before the end of what was read, so that a secret
# starting near the end is read whole with the next piece (see Masker._long_line_cut).
LONG_LINE_OVERLAP = 64 << 10
BINARY_WINDOW = 8192

# Each shape: (kind, finder, exact, on_lower). The finder starts with a literal, which lets the
# regex engine skip ahead fast (one big alternation, or case-insensitive keys, scan at a few MB/s;
# each anchored finder at ~1 GB/s). Finders of case-insensitive shapes run over the lower-cased
# text (bytes.lower() keeps offsets). The exact pattern then confirms a candidate on the original
# bytes at the same offset; its group "keep", if any, stays in front of the mask.
_SHAPES: list[tuple[str, bytes, bytes, bool]] = [
    (
        "private key",
        rb"-----BEGIN ",
        rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
        False,
    ),
    (
        "url credentials",
        rb"://[^/\s:@]+:[^/\s@]+@",
        rb"(?P<keep>://)[^/\s:@]+:[^/\s@]+(?=@)",
        False,
    ),
    ("bearer token", rb"earer", rb"(?<=[Bb])(?P<keep>earer\s+)[A-Za-z0-9\-._~+/]{8,}=*", False),
    ("github token", rb"gh[pousr]_", rb"gh[pousr]_[A-Za-z0-9]{20,}", False),
    ("github token", rb"github_pat_", rb"github_pat_[A-Za-z0-9_]{20,}", False),
    ("aws access key", rb"A[KS]IA", rb"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", False),
    ("slack token", rb"xox", rb"xox[abposr]-[A-Za-z0-9-]{10,}", False),
    ("jwt", rb"eyJ", rb"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}", False),
] + [
    (
        "secret assignment",
        # The finder already asks for the separator: "token" alone is a common word in logs,
        # and rejecting it inside the regex engine is far cheaper than per candidate in Python.
        key + rb"(?=[\"']?\s*[:=])",
        # A value opening with { or [ is a structure (JSON metadata {"token": {...}}), not a secret.
        rb"(?P<keep>(?i:" + key + rb")[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*MASKED)(?![{\[])"
        rb"[^\s\"'&,;]+",
        True,
    )
    for key in (rb"api[_-]?key", rb"token", rb"passw(?:or)?d", rb"secret")
]

_PEM_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(rb"-----END [A-Z0-9 ]*PRIVATE KEY-----")
# Lines that can be part of a key block's body (base64, and headers such as Proc-Type).
_PEM_BODY = re.compile(rb"(?:[A-Za-z0-9+/=:,\- \t]*\n)*")
_PEM_END_LINE = re.compile(rb"-----END [A-Z0-9 ]*PRIVATE KEY-----[ \t]*\n?")


@dataclass(frozen=True)
class Finding:
    """A secret-shaped string found by :meth:`Masker.scan` (the secret itself is not kept)."""

    line: int
    kind: str


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """Values of the variables in ``env`` whose names say they hold a secret."""
    out = []
    for name, value in env.items():
        upper = name.upper()
        if any(part in upper for part in ENV_NAME_PARTS) and len(value) >= MIN_ENV_VALUE:
            out.append(value)
    return out


# Binary formats people know, by the magic number at their start: whatever follows, they are
# not text (a tar or zip of text files starts with a header, then plain text).
_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"%PDF-",
    b"PK\x03\x04",  # zip, and what is built on it (jar, wheel, docx ...)
    b"PK\x05\x06",  # an empty zip
    b"PK\x07\x08",  # a spanned zip
    b"\x1f\x8b",  # gzip
    b"\xfd7zXZ\x00",  # xz
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\x04\x22\x4d\x18",  # lz4
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",  # Mach-O, both word sizes and byte orders
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal, Java class
    b"\x00asm",  # WebAssembly
    b"SQLite format 3\x00",
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"OggS",
    b"fLaC",
    b"\x93NUMPY",
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_TAR_MAGIC_AT = 257
_UNICODE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
# Control bytes text does not use: all but tab, LF, CR, form feed, backspace and escape (terminal
# colours in logs). NUL is one of them, and counts like the others.
_TEXT_CONTROLS = b"\t\n\r\f\b\x1b"
_CONTROLS = bytes(b for b in [*range(32), 127] if b not in _TEXT_CONTROLS)
# Decoded with surrogateescape, each byte that is not part of valid UTF-8 becomes one lone
# surrogate: those and the controls above are the bytes that are not text.
_NOT_TEXT = re.compile("[" + re.escape(_CONTROLS.decode("ascii")) + "\udc80-\udcff]")
# More than this share of bytes that are not text, and the content is binary.
BINARY_SHARE = 0.30


def read_head(src: IO[bytes], n: int = BINARY_WINDOW) -> bytes:
    """The first ``n`` bytes of ``src`` (fewer at its end), read whatever its read sizes.

    Raises:
      UsageError: ``src`` is a text stream.
    """
    parts = []
    while n > 0:
        chunk = src.read(n)
        if not chunk:
            break
        if isinstance(chunk, str):
            raise UsageError("streams must be binary (open files with 'rb')")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def is_binary(head: bytes) -> bool:
    """True when content whose first bytes are ``head`` is binary: never masked, never scanned.

    The one rule every reader uses (put's masking, the runner's capture, scan, push), given the
    first :data:`BINARY_WINDOW` (8 KiB) bytes. Binary means what it means to people: an image, an
    archive, a compiled file, not "holds a NUL byte". Content is binary when

    * it starts with a known binary magic number (PNG, JPEG, GIF, PDF, zip, gzip, xz, bzip2,
      zstd, lz4, 7z, rar, ELF, Mach-O, Java class, wasm, SQLite, TIFF, Ogg, FLAC, npy; a tar
      header), or
    * more than 30% of ``head`` is bytes that are not text: control bytes other than tab, LF, CR,
      form feed, backspace and escape (NUL counts like any other), and bytes that are not part of
      valid UTF-8 (so UTF-8 text in any script is text, and Latin-1 text with a few accented
      letters too).

    Text that starts with a UTF-16 or UTF-32 byte order mark is text. Empty content is text. So a
    log with a stray NUL, or a few, is text: scanned and masked like any other.
    """
    if not head:
        return False
    if head.startswith(_MAGIC) or _BZIP2.match(head):
        return True
    if head[_TAR_MAGIC_AT : _TAR_MAGIC_AT + 5] == b"ustar":
        return True
    if head.startswith(_UNICODE_BOMS):
        return False
    if head.isascii():
        bad = len(head) - len(head.translate(None, _CONTROLS))
    else:
        bad = len(_NOT_TEXT.findall(head.decode("utf-8", "surrogateescape")))
    return bad > len(head) * BINARY_SHARE


FieldPath = tuple[str | int, ...]


def field_texts(value: Any, key: str = "", path: FieldPath = ()) -> Iterator[tuple[FieldPath, str]]:
    """Every text a JSON-like value holds, with its path: how fields are scanned and masked.

    A leaf (str, number, bool, None) under a dict key ``k`` reads ``k=VALUE`` (numbers, bools and
    None as JSON), so a key that says "secret" applies to its value as in a log line; a leaf in
    a list reads with the key of the list; a dict key whose value is a dict or a list reads on
    its own. A leaf with no key (``key=""``) reads as itself. Paths hold dict keys and list
    indexes from ``value`` down.
    """
    # A stack of generators rather than recursion: a stored manifest may nest as deep as its
    # decoder allows, deeper than Python's stack.
    stack: list[Iterator[tuple[FieldPath, str] | _Descend]] = [iter([_Descend(value, key, path)])]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, _Descend):
            stack.append(_children(item))
        else:
            yield item


@dataclass(frozen=True)
class _Descend:
    value: Any
    key: str
    path: FieldPath


def _children(node: _Descend) -> Iterator[tuple[FieldPath, str] | _Descend]:
    value, key, path = node.value, node.key, node.path
    if isinstance(value, Mapping):
        for k, v in value.items():
            k = str(k)
            if isinstance(v, (Mapping, list, tuple)):
                yield (*path, k), k
                yield _Descend(v, k, (*path, k))
            else:
                yield (*path, k), _pair(k, v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, (Mapping, list, tuple)):
                yield _Descend(v, key, (*path, i))
            else:
                yield (*path, i), _pair(key, v)
    else:
        yield path, _pair(key, value)


def _pair(key: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
    else:
        text = str(value)
    return f"{key}={text}" if key else text


def _encode(text: str) -> bytes:
    # surrogatepass: any str round-trips, even one holding lone surrogates.
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class Masker:
    """Masks secrets in bytes and streams; build one per call site and reuse it.

    Args:
      literals: secrets to mask wherever they appear (str or bytes; empty ones are ignored).
      env: where to look for secret-named variables (default: ``os.environ``; ``{}`` for none).
      shapes: also mask well-known token shapes (default True).
    """

    def __init__(
        self,
        literals: Iterable[str | bytes] = (),
        *,
        env: Mapping[str, str] | None = None,
        shapes: bool = True,
    ) -> None:
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in literals]
        values += [v.encode() for v in env_secrets(os.environ if env is None else env)]
        # Longest first, so a secret that contains another is masked whole.
        values = sorted({v for v in values if v}, key=len, reverse=True)
        # One pattern per literal: a plain literal is found at memchr speed, an alternation of
        # literals is not. Overlaps are settled in _spans (the longer, earlier match wins).
        self._literals = [re.compile(re.escape(v)) for v in values]
        self._shapes = [
            (kind, re.compile(f), re.compile(x), low)
            for kind, f, x, low in (_SHAPES if shapes else [])
        ]

    def _spans(self, data: bytes) -> list[tuple[int, int, int, str]]:
        """(start, end, kept bytes, kind) of every secret in ``data``, sorted, not overlapping."""
        found: list[tuple[int, int, int, str]] = []
        for literal in self._literals:
            found += [(m.start(), m.end(), 0, "literal secret") for m in literal.finditer(data)]
        lower: bytes | None = None
        for kind, finder, exact, on_lower in self._shapes:
            text = data
            if on_lower:
                lower = data.lower() if lower is None else lower
                text = lower
            for c in finder.finditer(text):
                start = c.start()
                # A key assignment must start a word: "mytoken=" is not a "token=".
                if on_lower and start and text[start - 1 : start].isalnum():
                    continue
                m = exact.match(data, start)
                if m is not None:
                    keep = m.end("keep") - start if "keep" in exact.groupindex else 0
                    found.append((start, m.end(), keep, kind))
        found.sort(key=lambda s: (s[0], -s[1]))
        spans: list[tuple[int, int, int, str]] = []
        end = -1
        for span in found:
            if span[0] >= end:
                spans.append(span)
                end = span[1]
        return spans

    def mask(self, data: bytes) -> tuple[bytes, int]:
        """``data`` with every secret replaced, and how many were replaced."""
        spans = self._spans(data)
        if not spans:
            return data, 0
        out = []
        pos = 0
        for start, end, keep, _ in spans:
            out.append(data[pos : start + keep])
            out.append(MASK)
            pos = end
        out.append(data[pos:])
        return b"".join(out), len(spans)

    def mask_value(self, value: Any, key: str = "") -> tuple[Any, int]:
        """``value`` (a str, number, or dict or list of them) masked, and how many were masked.

        Reads ``value`` as :func:`field_texts` does, so a scan of the result finds nothing the
        Masker knows. A leaf that held a secret becomes a str with ``***MASKED***`` in its place
        (the whole value, when the secret reached into its key); a dict key that held one is
        masked too (``***MASKED***#2`` when two keys would become one). Tuples come back as lists.
        """
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            count = 0
            for key_, v in value.items():
                k = str(key_)
                new_k, n = self._mask_leaf("", k)
                if new_k != k:
                    base, i = new_k, 2
                    while new_k in out or new_k in value:
                        new_k, i = f"{base}#{i}", i + 1
                if isinstance(v, (Mapping, list, tuple)):
                    out[new_k], m = self.mask_value(v, new_k)
                else:
                    out[new_k], m = self._mask_leaf(new_k, v)
                count += n + m
            return out, count
        if isinstance(value, (list, tuple)):
            items = []
            count = 0
            for v in value:
                if isinstance(v, (Mapping, list, tuple)):
                    item, n = self.mask_value(v, key)
                else:
                    item, n = self._mask_leaf(key, v)
                items.append(item)
                count += n
            return items, count
        return self._mask_leaf(key, value)

    def scan_value(self, value: Any, key: str = "") -> list[tuple[FieldPath, Finding]]:
        """Where ``value`` (read as :func:`field_texts` reads it) holds secret-shaped strings."""
        return [
            (path, f) for path, text in field_texts(value, key) for f in self.scan(_encode(text))
        ]

    def _mask_leaf(self, key: str, value: Any) -> tuple[Any, int]:
        masked, n = self.mask(_encode(_pair(key, value)))
        if not n:
            return value, 0
        prefix = _encode(f"{key}=") if key else b""
        if masked.startswith(prefix):
            return _decode(masked[len(prefix) :]), n
        return MASK.decode(), n

    def mask_content(self, src: IO[bytes], dst: IO[bytes]) -> int:
        """Copy ``src`` to ``dst`` masking secrets unless it is binary; return the count.

        Binary content (:func:`is_binary` of its first :data:`BINARY_WINDOW` bytes) is copied
        byte for byte (and 0 returned): replacing bytes inside it would break it.
        """
        head = read_head(src)
        if is_binary(head):
            dst.write(head)
            while chunk := src.read(CHUNK):
                dst.write(chunk)
            return 0
        return self.mask_stream(cast(BinaryIO, Prefixed(head, src)), cast(BinaryIO, dst))

    def scan_content(self, src: IO[bytes]) -> Iterator[Finding]:
        """:meth:`scan_stream` of ``src`` unless it is binary (then nothing): what scan reads."""
        head = read_head(src)
        if not is_binary(head):
            yield from self.scan_stream(cast(BinaryIO, Prefixed(head, src)))

    def mask_stream(self, src: BinaryIO, dst: BinaryIO) -> int:
        """Copy ``src`` to ``dst`` masking secrets, in bounded memory; return the count.

        Masks whatever ``src`` holds: :meth:`mask_content` is the same for content that may be
        binary.
        """
        count = 0
        for piece in self._pieces(src):
            masked, n = self.mask(piece)
            dst.write(masked)
            count += n
        return count

    def _pieces(self, src: BinaryIO) -> Iterator[bytes]:
        """Text in pieces that end at a line end and never split a PEM block.

        A block whose END line does not come within MAX_CARRY bytes is masked anyway, and so are
        the key-body lines after it up to its END (or the first line that cannot be key text).
        """
        carry = b""
        skipping = False
        while True:
            chunk = src.read(CHUNK)
            data = carry + chunk
            carry = b""
            if skipping:
                body = _PEM_BODY.match(data)
                assert body is not None  # the pattern matches the empty string
                rest = data[body.end() :]
                if chunk and b"\n" not in rest and len(rest) < MAX_CARRY:
                    carry = rest  # a body line cut by the chunk boundary: wait for its end
                    continue
                end = _PEM_END_LINE.match(rest)
                if end is not None:
                    data, skipping = rest[end.end() :], False
                elif rest or not chunk:
                    data, skipping = rest, False
                else:
                    continue  # still inside the key body: keep skipping
            if not chunk:
                if data:
                    yield data
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < MAX_CARRY:
                carry = data
                continue
            if cut == 0:
                cut = self._long_line_cut(data)
            # Do not cut inside a private key block: hold it back until its END line arrives.
            last_begin = None
            for m in _PEM_BEGIN.finditer(data, 0, cut):
                last_begin = m
            if last_begin is not None and not _PEM_END.search(data, last_begin.end(), cut):
                if len(data) - last_begin.start() < MAX_CARRY:
                    if last_begin.start() > 0:
                        yield data[: last_begin.start()]
                    carry = data[last_begin.start() :]
                    continue
                # Too long for a key and no END in sight: mask it, never pass it through.
                yield data[: last_begin.start()] + MASK
                skipping = True
                continue
            yield data[:cut]
            carry = data[cut:]

    def _long_line_cut(self, data: bytes) -> int:
        """Where to cut ``data``, part of a line longer than MAX_CARRY, without splitting a secret.

        The cut goes LONG_LINE_OVERLAP bytes before the end, so a secret that starts after it is
        read whole with the next piece; a secret that straddles that point moves the cut to its
        end when it ends inside ``data`` (it is whole), else to one byte before its start (the
        byte a shape may look behind at, such as the B of Bearer, goes with it). Only a single
        secret-shaped run longer than what was read can still be cut.
        """
        cut = len(data) - LONG_LINE_OVERLAP
        before = 0
        for start, end, _, _ in self._spans(data):
            if end <= cut:
                before = end
                continue
            if start > cut:
                break
            if end < len(data):
                cut = before = end
                continue
            cut = max(start - 1, before)
            break
        return cut if cut > 0 else len(data)

    def scan_stream(self, src: BinaryIO) -> Iterator[Finding]:
        """:meth:`scan` over a stream in bounded memory (line numbers count from its start)."""
        line = 1
        for piece in self._pieces(src):
            for f in self.scan(piece):
                yield Finding(line + f.line - 1, f.kind)
            line += piece.count(b"\n")

    def scan(self, data: bytes) -> list[Finding]:
        """Where ``data`` holds secret-shaped strings (line numbers from 1)."""
        return [
            Finding(data.count(b"\n", 0, start) + 1, kind)
            for start, _, _, kind in self._spans(data)
        ]
