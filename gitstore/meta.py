"""The manifest: what a version records about itself and each of its artifacts.

Every version's tree holds ``.gitstore/manifest.json``: JSON with sorted keys, a ``format`` number,
the version's metadata and one entry per artifact. Readers ignore fields they do not know, and new
fields get defaults, so old stores stay readable and new fields can be added without a migration.

The commit message repeats the essentials as Git trailers so ``git log`` alone tells the story.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import msgspec

__all__ = [
    "FORMAT",
    "MANIFEST_DIR",
    "MANIFEST_FILE",
    "REMOVAL_KINDS",
    "ArtifactEntry",
    "Manifest",
    "Removal",
    "Truncation",
    "decode_manifest",
    "encode_manifest",
    "format_commit_message",
    "now_iso",
    "parse_trailers",
]

FORMAT = 1
# Where a version's tree holds its manifest: ``.gitstore/manifest.json``.
MANIFEST_DIR = ".gitstore"
MANIFEST_FILE = "manifest.json"


class Truncation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How an artifact was cut on the way in (the stored bytes are not the original)."""

    original_size: int
    original_sha256: str
    kept: list[tuple[int, int]] = msgspec.field(default_factory=list)


class ArtifactEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One artifact of a version: where its bytes are and what is known about them."""

    oid: str
    size: int
    sha256: str
    content_type: str
    created_at: str
    executable: bool = False
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    masked_secrets: int = 0
    truncated: Truncation | None = None

    def same_content(self, other: ArtifactEntry) -> bool:
        """True when both entries describe the same bytes with the same type, mode and tags."""
        return (
            self.oid == other.oid
            and self.executable == other.executable
            and self.content_type == other.content_type
            and self.tags == other.tags
        )


# Why an artifact left a kept version: dropped by a retention rule, or its bytes purged.
REMOVAL_KINDS = ("expired", "purged")


class Removal(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An artifact a version held once and no longer does (or holds as a tombstone).

    ``kind`` is ``expired`` (a retention rule removed it from the tree) or ``purged`` (its bytes
    were replaced by a tombstone naming this record); ``size`` and ``sha256`` describe the bytes
    that were there, ``at`` says when and ``why`` by which rule or for what reason.
    """

    kind: str
    size: int
    sha256: str
    at: str
    why: str = ""


class Manifest(msgspec.Struct, kw_only=True):
    """``.gitstore/manifest.json``: a version's metadata and its artifacts, by name.

    Every field is written, ``format`` included (no omit_defaults): a reader must be able to tell
    which format it holds; a manifest without ``format`` decodes as format 1.
    """

    format: int = FORMAT
    spec: str
    task: str
    version: int
    created_at: str
    run_id: str | None = None
    message: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    artifacts: dict[str, ArtifactEntry] = msgspec.field(default_factory=dict)
    # Set on merge versions (pull of diverged histories): names both sides wrote differently.
    conflicts: list[str] = msgspec.field(default_factory=list)
    # Artifacts removed from this version after it was written (retention, purge), by name.
    # UNSET is not encoded: a manifest that never lost one is byte for byte what it always was.
    removed: dict[str, Removal] | msgspec.UnsetType = msgspec.UNSET

    def removals(self) -> dict[str, Removal]:
        """The artifacts removed from this version, by name (empty when none ever was)."""
        return {} if isinstance(self.removed, msgspec.UnsetType) else self.removed


_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest as the canonical JSON stored in the tree (sorted keys, trailing newline)."""
    return _encoder.encode(manifest) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """Parse a stored manifest; raises msgspec.ValidationError/DecodeError on a damaged one."""
    try:
        return _decoder.decode(data)
    except RecursionError:
        # msgspec recurses per nesting level: JSON nested thousands deep is damage, not a bug.
        raise msgspec.DecodeError("JSON nested too deeply") from None


def now_iso() -> str:
    """The current UTC time as RFC 3339 with microseconds, the form every timestamp takes."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> _dt.datetime:
    """Parse a timestamp as :func:`now_iso` writes it (or any ISO 8601 form with a zone)."""
    value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value


_TRAILER_KEYS = ("Spec", "Task", "Version", "Run", "Created")


def format_commit_message(manifest: Manifest, summary: str) -> bytes:
    """A one-line summary, a blank line, then ``Gitstore-*`` trailers."""
    first = (manifest.message or summary).strip().splitlines()
    head = first[0] if first else summary
    body = "\n".join(first[1:]).strip() if manifest.message else ""
    lines = [head, ""]
    if body:
        lines += [body, ""]
    lines.append(f"Gitstore-Spec: {manifest.spec}")
    lines.append(f"Gitstore-Task: {manifest.task}")
    lines.append(f"Gitstore-Version: {manifest.version}")
    if manifest.run_id:
        lines.append(f"Gitstore-Run: {_one_line(manifest.run_id)}")
    lines.append(f"Gitstore-Created: {manifest.created_at}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse_trailers(message: bytes) -> dict[str, str]:
    """The ``Gitstore-*`` trailers of a commit message, keyed without the prefix."""
    out: dict[str, str] = {}
    for line in message.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Gitstore-") and key[9:] in _TRAILER_KEYS:
            out[key[9:]] = value
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())
