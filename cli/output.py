"""Human output made safe: what the commands print to a terminal cannot forge lines or drive it.

A store's names, messages, metadata and a remote's answers come from elsewhere (DESIGN.md 7: input
from elsewhere is hostile). Printed raw, a newline in an artifact name would forge a row of ``ls``
and an ESC would send the terminal a control sequence. Every line of human output therefore goes
through :func:`printable`; ``--json`` output does not need it (JSON escapes control characters).
"""

from __future__ import annotations

import re

import click

__all__ = ["printable", "say"]

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


def say(text: str = "", *, err: bool = False) -> None:
    """Print one line of human output, escaped with :func:`printable`."""
    click.echo(printable(text), err=err)
