"""The values gitstore hands out, and each one's ONE wire shape (``to_dict``).

Every public value type lives here: what a put takes (:class:`Artifact`), what readers return
(:class:`Version`, :class:`ArtifactInfo`, :class:`Diff`, :class:`SpecSummary`, :class:`TaskHead`),
what maintenance reports (:class:`Problem`, :class:`GcReport`, :class:`TaskDeletion`,
:class:`RunDeletion`, :class:`SecretFinding`, :class:`RetainPlan`) and what transfers report
(:class:`Remote`, :class:`Refusal`, :class:`TaskUpdate`, :class:`TransferResult`). Their
``to_dict`` is the JSON document the CLI prints with ``--json`` and the HTTP API sends: one shape
per value, written once, so the two can never drift apart.

This module holds data only: it reads no store and imports nothing below :mod:`gitstore.names`
and :mod:`gitstore.meta`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from typing import IO, Annotated, Any, Literal, Union

import msgspec

from gitstore.errors import ArtifactNotFoundError, UsageError
from gitstore.meta import MANIFEST_DIR, MANIFEST_FILE, Truncation

__all__ = [
    "MANIFEST_PATH",
    "Action",
    "Alias",
    "Artifact",
    "ArtifactInfo",
    "Diff",
    "DiskUsage",
    "Expiry",
    "ExpungeReport",
    "GcReport",
    "Problem",
    "PurgeHolder",
    "PurgeReport",
    "Refusal",
    "Remote",
    "RemovedArtifact",
    "RetainPlan",
    "RunDeletion",
    "SecretFinding",
    "Source",
    "SpecSummary",
    "TaskDeletion",
    "TaskHead",
    "TaskPlan",
    "TaskUpdate",
    "Text",
    "TransferResult",
    "UsagePart",
    "Version",
    "VersionPlan",
    "human_bytes",
    "redact_url",
]

MANIFEST_PATH = f"{MANIFEST_DIR}/{MANIFEST_FILE}"

Action = Literal["created", "fast-forward", "merged", "up-to-date", "ahead"]

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes]]


class Text(str):
    """A str that is meant as text, even when it happens to name a file.

    ``put`` refuses a plain ``str`` value that names an existing file or folder (a runner that
    meant ``Path("out/agent.log")`` would otherwise store those 13 characters); wrap the value
    in ``Text`` to say the characters are what is meant, or in ``pathlib.Path`` for the file.
    """

    __slots__ = ()


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One value to put, with what the caller knows about it.

    ``source`` is bytes, a str (stored as UTF-8), a path (``pathlib.Path`` or other PathLike; a
    file, or a folder whose files go under the artifact's name), or a binary stream. A ``str``
    is text, never a path; a plain ``str`` that names an existing file or folder is refused as
    ambiguous: wrap it in ``pathlib.Path`` (the file) or :class:`Text` (the characters).

    ``masked_secrets`` and ``truncated`` record what the caller already did to the bytes (the
    runner layer masks and caps logs before the put); put writes them into the manifest entry. A
    ``masked_secrets`` that is not None also tells ``put(mask_secrets=...)`` not to mask again.
    """

    source: Source
    content_type: str | None = None
    tags: Mapping[str, str] | None = None
    executable: bool | None = None
    masked_secrets: int | None = None
    truncated: Truncation | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the caller says about the value besides its bytes, as JSON (fields left unset are
        left out); the HTTP client sends it with each file of an upload."""
        out: dict[str, Any] = {}
        if self.content_type is not None:
            out["content_type"] = self.content_type
        if self.tags is not None:
            out["tags"] = dict(self.tags)
        if self.executable is not None:
            out["executable"] = self.executable
        if self.masked_secrets is not None:
            out["masked_secrets"] = self.masked_secrets
        if self.truncated is not None:
            out["truncated"] = msgspec.to_builtins(self.truncated)
        return out

    @classmethod
    def from_dict(cls, source: Source, doc: Any) -> Artifact:
        """The artifact :meth:`to_dict` described, over ``source``.

        Raises:
          UsageError: ``doc`` is not that shape (an unknown key, a value of the wrong type).
        """
        try:
            facts = msgspec.convert(doc, _Facts)
        except msgspec.ValidationError as e:
            raise UsageError(f"artifact facts: {e}") from None
        return cls(
            source,
            content_type=facts.content_type,
            tags=facts.tags,
            executable=facts.executable,
            masked_secrets=facts.masked_secrets,
            truncated=facts.truncated,
        )


class _Facts(msgspec.Struct, forbid_unknown_fields=True):
    """The shape :meth:`Artifact.from_dict` accepts (strict: it arrives from elsewhere)."""

    content_type: str | None = None
    tags: dict[str, str] | None = None
    executable: bool | None = None
    masked_secrets: Annotated[int, msgspec.Meta(ge=0)] | None = None
    truncated: Truncation | None = None


@dataclasses.dataclass(frozen=True)
class ArtifactInfo:
    """An artifact of one version, as ``ls``, ``show`` and ``put`` report it."""

    name: str
    oid: str
    sha256: str
    size: int
    content_type: str
    uri: str
    created_at: str
    executable: bool = False
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    masked_secrets: int = 0
    truncated: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the CLI's ``--json`` ARTIFACT)."""
        # Spelt out rather than dataclasses.asdict, which deep-copies field by field and was
        # most of the cost of a whole-store log --jsonl.
        return {
            "name": self.name,
            "oid": self.oid,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "uri": self.uri,
            "created_at": self.created_at,
            "executable": self.executable,
            "tags": dict(self.tags),
            "masked_secrets": self.masked_secrets,
            "truncated": None if self.truncated is None else copy.deepcopy(dict(self.truncated)),
        }


@dataclasses.dataclass(frozen=True)
class RemovedArtifact:
    """An artifact a version no longer holds, or holds as a tombstone: ``kind`` is ``expired``
    (a retention rule removed it) or ``purged`` (its bytes were replaced); ``size`` and
    ``sha256`` describe the bytes that were there, ``at`` is when, ``why`` the rule or reason."""

    name: str
    kind: str
    size: int
    sha256: str
    at: str
    why: str = ""

    def __str__(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"{self.name} {self.kind} on {self.at[:10]}{why}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Version:
    """One version of a task: its number, commit, metadata and artifacts.

    ``created`` is False when a put changed nothing and returned the existing latest version.
    """

    spec: str
    task: str
    version: int
    commit: str
    parents: tuple[str, ...]
    created_at: str
    run_id: str | None
    message: str | None
    metadata: Mapping[str, Any]
    artifacts: tuple[ArtifactInfo, ...]
    conflicts: tuple[str, ...] = ()
    created: bool = True
    aliases: tuple[str, ...] = ()
    removed: tuple[RemovedArtifact, ...] = ()

    @property
    def address(self) -> str:
        """``SPEC/TASK@<commit>``: this exact version."""
        return f"{self.spec}/{self.task}@{self.commit}"

    def artifact(self, name: str) -> ArtifactInfo:
        """The artifact called ``name``; raises ArtifactNotFoundError."""
        for a in self.artifacts:
            if a.name == name:
                return a
        for r in self.removed:
            if r.name == name:
                raise ArtifactNotFoundError(f"{self.spec}/{self.task}@v{self.version}: {r}")
        raise ArtifactNotFoundError(
            f"{self.spec}/{self.task}@v{self.version} has no artifact {name!r}"
        )

    def to_dict(self, *, artifacts: bool = True, created: bool = False) -> dict[str, Any]:
        """Plain JSON-ready form (the CLI's ``--json`` output).

        ``artifacts=False`` leaves the artifacts out (``log``); ``created=True`` adds whether
        the call made this version (``put``, ``rm``).
        """
        out: dict[str, Any] = {
            "spec": self.spec,
            "task": self.task,
            "version": self.version,
            "commit": self.commit,
            "parents": list(self.parents),
            "created_at": self.created_at,
            "run_id": self.run_id,
            "message": self.message,
            "metadata": dict(self.metadata),
        }
        if self.conflicts:
            out["conflicts"] = list(self.conflicts)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.removed:
            out["removed"] = [r.to_dict() for r in self.removed]
        if artifacts:
            out["artifacts"] = [a.to_dict() for a in self.artifacts]
        if created:
            out["created"] = self.created
        return out


@dataclasses.dataclass(frozen=True)
class Alias:
    """A name for one version of a task (``best``, ``shipped``): ``SPEC/TASK@NAME``.

    ``set_at`` is when it was last set (the time two stores compare when they disagree),
    ``tag`` the annotated tag object that records it.
    """

    spec: str
    task: str
    name: str
    commit: str
    version: int
    set_at: str
    tag: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``gitstore alias ls --json``)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Diff:
    """Names added, removed and changed between two versions (``old`` -> ``new``)."""

    old: Version
    new: Version
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "old": _side(self.old),
            "new": _side(self.new),
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing :meth:`Store.verify` found wrong."""

    spec: str
    task: str
    commit: str | None
    name: str | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.spec}/{self.task}"
        if self.commit:
            where += f"@{self.commit[:12]}"
        if self.name:
            where += f" {self.name}"
        return f"{where}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (one problem of ``verify --json``)."""
        return dataclasses.asdict(self)


def _side(v: Version) -> dict[str, Any]:
    return {"version": v.version, "commit": v.commit, "spec": v.spec, "task": v.task}


@dataclasses.dataclass(frozen=True)
class SpecSummary:
    """A spec and how many tasks it has (``ls``)."""

    name: str
    tasks: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"name": self.name, "tasks": self.tasks}


@dataclasses.dataclass(frozen=True)
class TaskHead:
    """A task of a spec and its latest version's commit, read from the refs alone (``ls SPEC``)."""

    spec: str
    task: str
    commit: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"name": self.task, "spec": self.spec, "task": self.task, "commit": self.commit}


@dataclasses.dataclass(frozen=True)
class TaskDeletion:
    """A task whose ref was deleted, and the commit it pointed at (``rm --task``)."""

    address: str
    commit: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"address": self.address, "deleted": True, "commit": self.commit}


def human_bytes(n: int) -> str:
    """``n`` bytes for people, in powers of 1024 as git and du print them: ``512 B``,
    ``1.5 KiB``, ``12.0 MiB``, ``3.21 GiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"


@dataclasses.dataclass(frozen=True)
class GcReport:
    """What :meth:`gitstore.Store.gc` removed or merged (or would have, with ``dry_run``).

    ``pruned_objects`` / ``pruned_bytes``: objects no ref reaches that were removed (loose
    files, and pack entries at their compressed size). ``packs_rewritten``: old packs replaced
    by the new ones. ``bytes_freed``: how much less the files gc touched take on disk now (old
    packs and loose files minus new packs; with ``dry_run`` an estimate).
    """

    temp_files: int = 0
    stale_locks: int = 0
    merges: int = 0
    pruned_objects: int = 0
    pruned_bytes: int = 0
    dry_run: bool = False
    packs_rewritten: int = 0
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class UsagePart:
    """The bytes of one spec, task or content type in :class:`DiskUsage`.

    ``disk``: bytes on disk of the objects attributed to it (a packed object: its compressed
    entry in the pack; a loose one: its file). ``logical``: the artifacts' own sizes, each
    distinct blob once. ``objects``: how many objects that is.
    """

    name: str
    disk: int
    logical: int
    objects: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DiskUsage:
    """What :meth:`gitstore.Store.du` measured: bytes on disk and logical bytes of a scope,
    per spec, per task and per content type, every object counted once.

    An object several tasks share is attributed to the first of them in ``SPEC/TASK`` order
    (and its content type is the one that task's newest version gives it); commits, trees and
    manifests count under their task and under the type ``(versions)``.

    ``total`` is the bytes on disk: for the whole store, every file under ``objects/`` (what
    ``git count-objects -v`` adds up), so it also holds ``unreachable`` (objects no ref reaches,
    waiting for gc) and ``other`` (pack headers and indexes, a second copy of an object, temp
    files of writes in flight); for a spec or a task, the sum of its parts.
    """

    scope: str | None
    total: int
    logical: int
    unreachable: int
    other: int
    specs: tuple[UsagePart, ...]
    tasks: tuple[UsagePart, ...]
    types: tuple[UsagePart, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "scope": self.scope,
            "total": self.total,
            "logical": self.logical,
            "unreachable": self.unreachable,
            "other": self.other,
            "specs": [p.to_dict() for p in self.specs],
            "tasks": [p.to_dict() for p in self.tasks],
            "types": [p.to_dict() for p in self.types],
        }


@dataclasses.dataclass(frozen=True)
class ExpungeReport:
    """What :meth:`gitstore.Store.expunge` removed: how many of the objects asked for were found
    (and are now gone), how many packs were rewritten without them, and the bytes given back."""

    objects: int = 0
    packs_rewritten: int = 0
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PurgeHolder:
    """One version holding purged bytes: ``spec/task`` version ``version`` (``commit``, as it
    was before the purge) at artifact ``names``."""

    spec: str
    task: str
    version: int
    commit: str
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        out = dataclasses.asdict(self)
        out["names"] = list(self.names)
        return out


@dataclasses.dataclass(frozen=True)
class PurgeReport:
    """What :meth:`gitstore.Store.purge` found (dry run) or did (``applied``).

    The purged bytes are blob ``oid`` (``sha256``, ``size`` bytes); ``held_by`` lists every
    version that held them; ``tombstone`` is the text that replaces them, ``at`` and ``why``
    when and why. Applied, ``rewritten`` counts the versions rewritten and ``expunged`` the
    objects removed from disk (``bytes_freed``).
    """

    oid: str
    sha256: str
    size: int
    at: str
    why: str
    tombstone: str
    held_by: tuple[PurgeHolder, ...]
    applied: bool = False
    rewritten: int = 0
    expunged: int = 0
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        out = dataclasses.asdict(self)
        out["held_by"] = [h.to_dict() for h in self.held_by]
        return out


@dataclasses.dataclass(frozen=True)
class TaskUpdate:
    """What integrating a remote head did to one local task."""

    task: str
    action: Action
    old: str | None
    new: str | None
    conflicts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form."""
        out: dict[str, object] = {
            "task": self.task,
            "action": self.action,
            "old": self.old,
            "new": self.new,
        }
        if self.action == "merged":
            out["conflicts"] = list(self.conflicts)
        return out


@dataclasses.dataclass(frozen=True)
class Remote:
    """A remote recorded in the store's git config."""

    name: str
    url: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"name": self.name, "url": self.url}


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A task push left alone, and why.

    ``kind``: ``behind`` (the remote has versions we lack: pull first), ``rejected`` (the remote
    refused the update, for example because it moved meanwhile) or ``secrets`` (the versions to
    send hold secret-shaped strings).
    """

    task: str
    reason: str
    kind: str = "behind"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"task": self.task, "reason": self.reason, "kind": self.kind}


@dataclasses.dataclass
class TransferResult:
    """What a push, pull, sync or bundle transfer did.

    ``updated``: tasks whose ref moved without a merge (created or fast-forwarded), on the remote
    for a push and locally for a pull. ``merged``: local merge versions made by a pull (with the
    names both sides changed). ``refused``: tasks push left alone. ``objects``/``bytes``: what
    crossed the wire (a push counts uncompressed object bytes, a pull the pack bytes received).
    ``aliases``: ``SPEC/TASK@NAME`` of each alias whose value moved (set, moved or removed) on
    the remote for a push, locally for a pull.
    """

    remote: str
    url: str
    updated: list[TaskUpdate] = dataclasses.field(default_factory=list)
    merged: list[TaskUpdate] = dataclasses.field(default_factory=list)
    refused: list[Refusal] = dataclasses.field(default_factory=list)
    up_to_date: int = 0
    objects: int = 0
    bytes: int = 0
    aliases: list[str] = dataclasses.field(default_factory=list)

    def absorb(self, other: TransferResult) -> None:
        """Add ``other``'s work to this result (sync sums its rounds)."""
        self.updated += other.updated
        self.merged += other.merged
        self.aliases += other.aliases
        self.refused = other.refused
        self.objects += other.objects
        self.bytes += other.bytes
        self.up_to_date = other.up_to_date

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the CLI's ``--json`` summary)."""
        return {
            "remote": self.remote,
            "url": redact_url(self.url),
            "updated": [u.to_dict() for u in self.updated],
            "merged": [u.to_dict() for u in self.merged],
            "refused": [r.to_dict() for r in self.refused],
            "up_to_date": self.up_to_date,
            "objects": self.objects,
            "bytes": self.bytes,
            "aliases": list(self.aliases),
        }


@dataclasses.dataclass(frozen=True)
class SecretFinding:
    """A secret-shaped string in a stored version: where it is and what kind, not the secret.

    ``field`` says where, with ``name`` and ``line``:

    * ``""``: the bytes of artifact ``name``, at ``line``;
    * ``"tree"``: the bytes of a blob the tree holds at path ``name`` that the manifest does not
      list (or lists with other bytes);
    * ``"message"``, ``"run_id"``, ``"metadata.KEY"`` (``.KEY`` and ``[INDEX]`` down nested
      values): the version's fields (``line`` within a multi-line message);
    * ``"tag KEY"``, ``"content type"``, ``"name"``: a field of artifact ``name``;
    * ``"commit"``: the raw commit (its headers, message and trailers), at ``line``;
    * ``"manifest"``: the raw ``.gitstore/manifest.json``, at ``line``; ``"manifest.PATH"``: a
      manifest field gitstore does not know.

    Keys and names that themselves hold a secret are shown masked.
    """

    spec: str
    task: str
    commit: str
    name: str
    line: int
    kind: str
    field: str = ""

    @property
    def where(self) -> str:
        """The place within the version, as :meth:`__str__` prints it."""
        if not self.field:
            return f"{self.name}:{self.line}"
        if self.field == "tree":
            return f"{self.name}:{self.line} (in the tree, not in the manifest)"
        if self.field == "manifest":
            return f"{MANIFEST_PATH}:{self.line}"
        if self.field == "commit":
            return f"commit:{self.line}"
        if self.field == "name":
            return f"name {self.name}"
        if self.name:
            return f"{self.field} {'on' if self.field.startswith('tag ') else 'of'} {self.name}"
        return self.field if self.line == 1 else f"{self.field}:{self.line}"

    def __str__(self) -> str:
        return f"{self.spec}/{self.task}@{self.commit[:12]} {self.where}: {self.kind}"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunDeletion:
    """What :func:`delete_run` deleted (or, in a dry run, would delete) and what it kept."""

    run: str
    deleted: tuple[str, ...]
    kept: Mapping[str, str]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "run": self.run,
            "deleted": list(self.deleted),
            "kept": dict(self.kept),
            "dry_run": self.dry_run,
        }


@dataclasses.dataclass(frozen=True)
class Expiry:
    """An artifact that a kept version loses to a content type's retention rule."""

    name: str
    size: int
    content_type: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VersionPlan:
    """What retention does with one version: keep it (``reasons`` say which rules) or drop it,
    and which of its artifacts expire if it stays."""

    commit: str
    number: int
    time: str
    keep: bool
    reasons: tuple[str, ...] = ()
    expire: tuple[Expiry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "commit": self.commit,
            "version": self.number,
            "time": self.time,
            "keep": self.keep,
            "reasons": list(self.reasons),
            "expire": [e.to_dict() for e in self.expire],
        }


@dataclasses.dataclass(frozen=True)
class TaskPlan:
    """Retention's plan for one task, newest version first, made from the head ``head``.

    ``rules`` are the version rules the task was planned with (empty: none, every version stays).
    After the plan is applied, ``new_head`` is the task's rewritten head; ``skipped`` says why a
    task with changes planned was left as it was (another rewrite won the race for it).
    """

    spec: str
    task: str
    head: str
    versions: tuple[VersionPlan, ...]
    rules: str = ""
    new_head: str | None = None
    skipped: str | None = None

    @property
    def dropped(self) -> tuple[VersionPlan, ...]:
        """The versions that go."""
        return tuple(v for v in self.versions if not v.keep)

    @property
    def changes(self) -> bool:
        """True when the plan drops a version or expires an artifact."""
        return any(not v.keep or v.expire for v in self.versions)

    def keeps(self, commit: str) -> bool:
        """True when the plan keeps version ``commit``."""
        return any(v.keep for v in self.versions if v.commit == commit)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        out: dict[str, Any] = {
            "spec": self.spec,
            "task": self.task,
            "head": self.head,
            "rules": self.rules,
            "versions": [v.to_dict() for v in self.versions],
        }
        if self.new_head is not None:
            out["new_head"] = self.new_head
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


@dataclasses.dataclass(frozen=True)
class RetainPlan:
    """What :meth:`gitstore.Store.retain` plans (a dry run) or did (``applied``).

    ``bytes_freed`` counts each blob once that no version left holds; the bytes leave the disk
    with the next ``gc`` past its grace period.
    """

    tasks: tuple[TaskPlan, ...]
    bytes_freed: int = 0
    applied: bool = False

    @property
    def dropped(self) -> int:
        """How many versions go."""
        return sum(len(t.dropped) for t in self.tasks)

    @property
    def kept(self) -> int:
        """How many versions stay."""
        return sum(1 for t in self.tasks for v in t.versions if v.keep)

    @property
    def expired(self) -> int:
        """How many artifacts of kept versions go."""
        return sum(len(v.expire) for t in self.tasks for v in t.versions)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``retain --json``)."""
        return {
            "applied": self.applied,
            "dropped": self.dropped,
            "kept": self.kept,
            "expired": self.expired,
            "bytes_freed": self.bytes_freed,
            "tasks": [t.to_dict() for t in self.tasks],
        }


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for output and logs)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        netloc = f"{parsed.username}:***@{parsed.hostname}" + (
            f":{parsed.port}" if parsed.port else ""
        )
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url
