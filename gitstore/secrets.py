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
:data:`MAX_CARRY` bytes, past which the whole carried text is masked: a cut is never silent).
Only keys and separators around a masked value are kept (``password=***MASKED***``), so a reader
still sees what was there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "ENV_NAME_PARTS",
    "MASK",
    "MIN_ENV_VALUE",
    "Finding",
    "Masker",
]

MASK = b"***MASKED***"
ENV_NAME_PARTS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "KEY", "CREDENTIAL")
MIN_ENV_VALUE = 8
CHUNK = 1 << 20
# A PEM block longer than this is not a key: mask what was carried rather than hold more.
MAX_CARRY = 1 << 20

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
        rb"(?P<keep>(?i:" + key + rb")[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*MASKED)[^\s\"'&,;]+",
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

    def mask_stream(self, src: BinaryIO, dst: BinaryIO) -> int:
        """Copy ``src`` to ``dst`` masking secrets, in bounded memory; return the count."""
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
                cut = len(data)
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
