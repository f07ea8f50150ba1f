"""Text capture with explicit truncation: store a log whole or capped, and give back an excerpt.

A runner keeps a short excerpt of each log in its own run state (to show in a UI, to feed back
to a model) and stores the log itself. :func:`capture` does both in one pass over the input, in
bounded memory:

* the stored bytes are the whole input, or, past ``max_bytes``, its head and tail around a marker
  line; the cut is recorded as a :class:`~gitstore.meta.Truncation` (original size, original
  sha256, kept byte ranges) that goes into the manifest, so ``gitstore show`` shows it;
* the :class:`Excerpt` holds the first and last lines within ``head_bytes`` / ``tail_bytes``
  (and ``max_lines``), and says whether anything between them was left out;
* binary content (:func:`~gitstore.secrets.is_binary`, the rule put, scan and push use, on the
  first ``binary_window`` bytes) gets no excerpt, and the excerpt says so.

With a :class:`~gitstore.secrets.Masker`, secrets are masked before anything is cut (a cut must
never leave half a secret behind), so the truncation describes the masked text: its digest is
never a digest of a secret.

Nothing is dropped silently: every cut is in the manifest, in the excerpt, and (for text) in the
stored bytes themselves as a marker line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import tempfile
from typing import IO, BinaryIO, cast

from gitstore._io import Prefixed
from gitstore.errors import InputError, UsageError
from gitstore.meta import Truncation
from gitstore.model import Artifact, Source
from gitstore.secrets import BINARY_WINDOW, Masker, is_binary, read_head

__all__ = ["CaptureDigest", "CapturePolicy", "Captured", "Excerpt", "capture", "is_binary"]

CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class CapturePolicy:
    """How much of a captured file to store and to excerpt.

    Args:
      max_bytes: stored bytes at most (head and tail around a marker line); None stores all.
      excerpt_bytes: the excerpt's head and tail together hold at most this many bytes.
      head_bytes: bytes of the beginning kept in the excerpt (and in a capped stored copy).
      tail_bytes: bytes of the end kept in the excerpt (and in a capped stored copy).
      max_lines: lines the excerpt holds at most (half from the head, half from the tail).
      binary_window: how many leading bytes :func:`~gitstore.secrets.is_binary` reads to decide
        whether the content is binary (default 8 KiB, what put, scan and push read).
    """

    max_bytes: int | None = None
    excerpt_bytes: int = 8000
    head_bytes: int = 4000
    tail_bytes: int = 4000
    max_lines: int | None = None
    binary_window: int = BINARY_WINDOW

    def __post_init__(self) -> None:
        for name in ("excerpt_bytes", "head_bytes", "tail_bytes", "binary_window"):
            if getattr(self, name) < 0:
                raise UsageError(f"capture policy: {name} must not be negative")
        if self.max_bytes is not None and self.max_bytes < 256:
            # Room for the marker line and some text on each side.
            raise UsageError("capture policy: max_bytes must be at least 256 (or None)")
        if self.max_lines is not None and self.max_lines < 1:
            raise UsageError("capture policy: max_lines must be at least 1 (or None)")


@dataclasses.dataclass(frozen=True)
class Excerpt:
    """The head and tail of a captured text, and whether anything between them was left out.

    ``binary`` content has no excerpt (``head`` and ``tail`` are empty). ``size`` is the size of
    the (masked) text the excerpt was taken from.
    """

    head: str
    tail: str
    truncated: bool
    binary: bool
    size: int

    @property
    def code(self) -> str:
        """What the excerpt is, for a program: ``"binary"`` (binary content: no excerpt),
        ``"truncated"`` (head and tail, something left out between) or ``"whole"``."""
        if self.binary:
            return "binary"
        return "truncated" if self.truncated else "whole"

    @property
    def note(self) -> str:
        """One line saying what the excerpt is (for a UI or a model's prompt)."""
        if self.binary:
            return f"binary content ({self.size} bytes): no excerpt"
        if self.truncated:
            left = self.size - len(self.head.encode()) - len(self.tail.encode())
            return f"excerpt: first and last lines of {self.size} bytes ({left} bytes left out)"
        return f"whole text ({self.size} bytes)"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form (for a runner's state)."""
        return {
            "head": self.head,
            "tail": self.tail,
            "truncated": self.truncated,
            "binary": self.binary,
            "size": self.size,
            "code": self.code,
            "note": self.note,
        }


@dataclasses.dataclass(frozen=True)
class CaptureDigest:
    """The identity of the bytes a capture will store, known before the put: their ``size``,
    ``sha256`` (what the manifest will record) and ``oid`` (the Git blob id the store will
    give them, so ``gitstore://`` URIs and dedup can be reasoned about up front)."""

    size: int
    sha256: str
    oid: str

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form (for a runner's state)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Captured:
    """What :func:`capture` made: the artifact to put, and the excerpt.

    Use it as a context manager (or call :meth:`close`) once the artifact is put: a large masked
    input lives in a temp file until then.
    """

    artifact: Artifact
    excerpt: Excerpt
    masked_secrets: int
    truncated: Truncation | None
    _resources: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)

    _digest: CaptureDigest | None = dataclasses.field(default=None, repr=False)

    def digest(self) -> CaptureDigest:
        """Size, sha256 and Git blob id of the bytes :attr:`artifact` will store (masked, cut).

        Computed once: bytes held in memory (a cut log) are hashed at once; otherwise the stored
        copy (or the source file) is read once more, in chunks, and a stream is left where it
        was, ready for the put. Call it before the put (and before :meth:`close`).
        """
        if self._digest is None:
            self._digest = _digest_of(self.artifact.source)
        return self._digest

    def close(self) -> None:
        """Remove the temp file, if any."""
        self._resources.close()

    def __enter__(self) -> Captured:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def capture(
    source: Source,
    policy: CapturePolicy | None = None,
    *,
    masker: Masker | None = None,
    content_type: str | None = None,
    tags: dict[str, str] | None = None,
    tmpdir: str | None = None,
) -> Captured:
    """Read ``source`` once and return the artifact to store plus its excerpt.

    Args:
      source: a path (``pathlib.Path``), bytes, str (UTF-8 text) or a binary stream.
      policy: what to store and excerpt (default: store all, 8000-byte excerpt).
      masker: mask secrets first (binary content is never masked).
      content_type, tags: carried onto the artifact.
      tmpdir: where a large masked copy is spooled (default: the system's temp folder).

    Raises:
      InputError: the source cannot be read.
    """
    policy = policy or CapturePolicy()
    resources = contextlib.ExitStack()
    label = os.fspath(source) if isinstance(source, os.PathLike) else type(source).__name__
    try:
        src = _open(source, resources)
        window = read_head(src, policy.binary_window)
        binary = is_binary(window)
        stream = cast(IO[bytes], Prefixed(window, src))
        masked = masker is not None and not binary
        count = 0
        if masked:
            assert masker is not None
            spool = _spool(resources, tmpdir)
            # Text, by the one rule decided above: mask it all.
            count = masker.mask_stream(cast(BinaryIO, stream), cast(BinaryIO, spool))
            spool.seek(0)
            stream = spool
        # A caller's stream is consumed by this pass: keep a copy to store (unless it is cut).
        copy: IO[bytes] | None = None
        if not masked and not isinstance(source, (os.PathLike, str, bytes, bytearray, memoryview)):
            copy = _spool(resources, tmpdir)
        kept = _scan(stream, policy, copy)
    except OSError as e:
        resources.close()
        raise InputError(f"{label}: {e.strerror or e}") from None
    except BaseException:
        resources.close()
        raise
    truncation: Truncation | None = None
    stored: Source
    if policy.max_bytes is not None and kept.size > policy.max_bytes:
        stored, truncation = _cut(kept, policy.max_bytes, binary)
        resources.close()  # the capped bytes are in memory: no temp file is needed any more
    elif masked:
        stream.seek(0)
        stored = stream
    elif copy is not None:
        copy.seek(0)
        stored = copy
    else:
        stored = source
    artifact = Artifact(
        stored,
        content_type=content_type,
        tags=tags,
        masked_secrets=count if masker is not None else None,
        truncated=truncation,
    )
    return Captured(artifact, _excerpt(kept, policy, binary), count, truncation, resources)


# -- internals -------------------------------------------------------------------------------


def _digest_of(source: Source) -> CaptureDigest:
    """Size, sha256 and blob id of what ``source`` holds (a stream is rewound afterwards)."""
    if isinstance(source, str):
        source = source.encode("utf-8")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        blob = hashlib.sha1(b"blob %d\0" % len(data))
        blob.update(data)
        return CaptureDigest(len(data), hashlib.sha256(data).hexdigest(), blob.hexdigest())
    with contextlib.ExitStack() as stack:
        if isinstance(source, os.PathLike):
            f: IO[bytes] = stack.enter_context(open(source, "rb"))
            start = 0
        else:
            f = source
            start = f.tell()
        # The blob id hashes a header holding the size first: measure, then read.
        size = f.seek(0, os.SEEK_END) - start
        f.seek(start)
        sha256 = hashlib.sha256()
        blob = hashlib.sha1(b"blob %d\0" % size)
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
        f.seek(start)
    return CaptureDigest(size, sha256.hexdigest(), blob.hexdigest())


@dataclasses.dataclass
class _Kept:
    """One pass over the content: its size, digest, and the bytes kept from each end."""

    size: int
    sha256: str
    head: bytes
    tail: bytes


def _open(source: Source, resources: contextlib.ExitStack) -> IO[bytes]:
    if isinstance(source, os.PathLike):
        return resources.enter_context(open(os.fspath(source), "rb"))
    if isinstance(source, str):
        return io.BytesIO(source.encode())
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        return source
    raise UsageError(f"cannot capture a {type(source).__name__} (give a Path, bytes, str, stream)")


def _spool(resources: contextlib.ExitStack, tmpdir: str | None) -> IO[bytes]:
    # Closed (and so removed) by the ExitStack once the put has read it.
    return resources.enter_context(tempfile.TemporaryFile(dir=tmpdir))


def _scan(stream: IO[bytes], policy: CapturePolicy, copy: IO[bytes] | None) -> _Kept:
    """Size, sha256, head and tail of ``stream`` in one pass (memory: the kept ends + a chunk);
    every byte also goes to ``copy`` when one is given."""
    keep_head = max(policy.head_bytes, policy.max_bytes or 0)
    keep_tail = max(policy.tail_bytes, policy.max_bytes or 0)
    digest = hashlib.sha256()
    head = bytearray()
    tail = bytearray()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if len(head) < keep_head:
            head += chunk[: keep_head - len(head)]
        tail += chunk
        if len(tail) > keep_tail:
            del tail[: len(tail) - keep_tail]
        if copy is not None:
            copy.write(chunk)
    return _Kept(size, digest.hexdigest(), bytes(head), bytes(tail))


def _cut(kept: _Kept, max_bytes: int, binary: bool) -> tuple[bytes, Truncation]:
    """The capped bytes to store (head, marker, tail) and the record of the cut."""
    # Room for the longest marker: the count cut is at most the size in all.
    longest = f"\n[gitstore: {kept.size} bytes cut here, {kept.size} bytes in all]\n"
    marker = b"" if binary else longest.encode()
    room = max_bytes - len(marker)
    h = room // 2
    t = room - h
    head = kept.head[:h]
    tail = kept.tail[-t:] if t else b""
    if not binary:
        # End the head after a whole line and start the tail at one, when a line end is near.
        nl = head.rfind(b"\n")
        if nl >= h // 2:
            head = head[: nl + 1]
        nl = tail.find(b"\n")
        if 0 <= nl < t // 2:
            tail = tail[nl + 1 :]
    # The marker names how much was cut: known only now that the ends are.
    left = kept.size - len(head) - len(tail)
    if not binary:
        marker = f"\n[gitstore: {left} bytes cut here, {kept.size} bytes in all]\n".encode()
        if head.endswith(b"\n"):
            marker = marker[1:]
    ranges = [(0, len(head)), (kept.size - len(tail), kept.size)]
    return head + marker + tail, Truncation(
        original_size=kept.size, original_sha256=kept.sha256, kept=ranges
    )


def _excerpt(kept: _Kept, policy: CapturePolicy, binary: bool) -> Excerpt:
    if binary:
        return Excerpt("", "", truncated=False, binary=True, size=kept.size)
    budget = policy.excerpt_bytes
    h = min(policy.head_bytes, budget)
    t = min(policy.tail_bytes, budget - h)
    # The whole text, when the two kept ends cover it.
    whole: bytes | None = None
    if kept.size <= len(kept.head):
        whole = kept.head
    elif kept.size <= len(kept.head) + len(kept.tail):
        whole = kept.head + kept.tail[len(kept.head) + len(kept.tail) - kept.size :]
    if (
        whole is not None
        and len(whole) <= budget
        and (policy.max_lines is None or _lines(whole) <= policy.max_lines)
    ):
        return Excerpt(_text(whole), "", truncated=False, binary=False, size=kept.size)
    up = down = 0
    if policy.max_lines is not None:
        up = (policy.max_lines + 1) // 2
        down = policy.max_lines - up
    if whole is not None and len(whole) <= budget:
        # It fits in bytes but has too many lines: first and last lines, within the byte limits.
        lines = whole.splitlines(keepends=True)
        head = b"".join(lines[:up])[:h]
        tail = b"".join(lines[len(lines) - down :])[-t:] if down and t else b""
        return Excerpt(_text(head), _text(tail), truncated=True, binary=False, size=kept.size)
    if whole is not None:
        head = whole[:h]
        tail = whole[max(len(head), kept.size - t) :]
    else:
        head = kept.head[:h]
        tail = kept.tail[len(kept.tail) - t :] if t else b""
    if len(head) + len(tail) < kept.size:
        # Whole lines where a line end is near: "the first and last lines", not ragged halves.
        nl = head.rfind(b"\n")
        if nl >= 0:
            head = head[: nl + 1]
        nl = tail.find(b"\n")
        if 0 <= nl < len(tail) - 1:
            tail = tail[nl + 1 :]
    if policy.max_lines is not None:
        head = b"".join(head.splitlines(keepends=True)[:up])
        tail = b"".join(tail.splitlines(keepends=True)[-down:]) if down else b""
    truncated = len(head) + len(tail) < kept.size
    return Excerpt(_text(head), _text(tail), truncated=truncated, binary=False, size=kept.size)


def _lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def _text(data: bytes) -> str:
    # A cut may fall inside a multi-byte character: show it as U+FFFD rather than fail.
    return data.decode("utf-8", "replace")
