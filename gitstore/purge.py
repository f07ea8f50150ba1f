"""Purge: bytes that must not be kept (a leaked secret) replaced by a tombstone everywhere.

:func:`holders` finds every version of every task whose tree holds a blob; :func:`enforce`
rewrites those chains (:mod:`gitstore.rewrite`) with the blob replaced by the tombstone of its
:class:`~gitstore.records.PurgeRecord`, so every version keeps its number and metadata and its
manifest records what was purged, when and why. The record itself lives in
``refs/gitstore/purges`` (:mod:`gitstore.records`): push, pull and bundles carry it, and a store
that learns of it applies it to its own copies. The facade (:meth:`gitstore.Store.purge`) then
expunges the old blob at once, so its bytes are in no object of the store when purge returns.

The tombstone is a function of the record alone (not of the store or the name), so two stores
that apply the same record to the same chain write the same commits and converge.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping

from gitstore.errors import IntegrityError, NotFoundError, UsageError
from gitstore.meta import now_iso
from gitstore.model import PurgeHolder, PurgeReport
from gitstore.records import PurgeRecord
from gitstore.rewrite import Edit, Rewritten, Tombstone, rewrite_chains
from gitstore.versions import Versions

__all__ = [
    "MAX_TOMBSTONE",
    "Holding",
    "apply",
    "enforce",
    "find_blob",
    "holders",
    "plan",
    "plans",
    "tombstone_text",
]

_HEX40 = re.compile(r"[0-9a-f]{40}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")

# A tombstone replaces bytes; it is a sentence, not a new artifact.
MAX_TOMBSTONE = 4096


@dataclasses.dataclass(frozen=True)
class Holding:
    """Version ``commit`` (number ``version``) of ``spec/task`` holds a purged blob at ``names``."""

    spec: str
    task: str
    version: int
    commit: str
    names: tuple[str, ...]
    oid: str


def tombstone_text(*, sha256: str, size: int, at: str, why: str) -> str:
    """The default tombstone: what was purged, when and why."""
    reason = f"Reason: {why}\n" if why else ""
    return (
        f"This artifact was purged by gitstore on {at}.\n{reason}"
        f"The purged bytes ({size} bytes, sha256 {sha256}) are no longer stored.\n"
    )


def holders(versions: Versions, heads: Mapping[str, str], oids: Iterable[str]) -> list[Holding]:
    """Every version, of every task in ``heads`` (``SPEC/TASK -> head``), whose artifacts
    include one of the blobs ``oids``; by task, newest version first."""
    wanted = set(oids)
    found: list[Holding] = []
    for key, head in sorted(heads.items()):
        spec, task = key.split("/", 1)
        for commit in versions.walk([head]):
            m = versions.manifest(commit)
            for oid in sorted(wanted):
                names = tuple(sorted(n for n, e in m.artifacts.items() if e.oid == oid))
                if names:
                    found.append(Holding(spec, task, m.version, commit, names, oid))
    found.sort(key=lambda h: (h.spec, h.task, -h.version, h.oid))
    return found


def plans(
    versions: Versions, heads: Mapping[str, str], records: Mapping[str, PurgeRecord]
) -> tuple[dict[str, dict[str, Edit]], str]:
    """The rewrite plan of every task of ``heads`` holding a blob of ``records`` (blob id ->
    record): ``SPEC/TASK -> {commit: Edit}``, and the time their removals record (the
    records' own, not now: two stores applying them write the same commits)."""
    found = holders(versions, heads, records)
    out: dict[str, dict[str, Edit]] = {}
    for h in found:
        plan = out.setdefault(f"{h.spec}/{h.task}", {})
        record = records[h.oid]
        stone = Tombstone(record.tombstone.encode(), record.why or "purged")
        replace = dict(plan[h.commit].replace) if h.commit in plan else {}
        replace.update({name: stone for name in h.names})
        plan[h.commit] = Edit(replace=replace)
    when = max((records[h.oid].at for h in found), default=now_iso())
    return out, when


def enforce(
    versions: Versions, heads: Mapping[str, str], records: Mapping[str, PurgeRecord]
) -> list[Rewritten]:
    """Rewrite every chain of ``heads`` holding a blob of ``records`` (blob id -> record) with
    the record's tombstone in its place; the replaced commits are recorded as rewritten by
    ``purge``. Returns what each rewritten task became (tasks holding none are left alone).
    """
    todo, when = plans(versions, heads, records)
    jobs = []
    for key, plan in sorted(todo.items()):
        spec, task = key.split("/", 1)
        jobs.append((spec, task, heads[key], plan))
    return rewrite_chains(versions, jobs, by="purge", at=when)


def find_blob(
    versions: Versions,
    heads: Mapping[str, str],
    *,
    oid: str | None = None,
    sha256: str | None = None,
) -> tuple[str, str, int]:
    """The blob id, sha256 and size of the bytes to purge, named by blob id or by sha256.

    Raises UsageError for a malformed id or digest, NotFoundError when no version holds them
    (and, for a blob id, the store does not have it either).
    """
    if oid is not None:
        oid = oid.lower()
        if not _HEX40.match(oid):
            raise UsageError(f"--blob {oid[:50]!r} is not a blob id (40 hex digits)")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _HEX64.match(sha256):
            raise UsageError(f"--sha256 {sha256[:70]!r} is not a sha256 (64 hex digits)")
    found: dict[str, tuple[str, int]] = {}
    for head in heads.values():
        for commit in versions.walk([head]):
            for e in versions.manifest(commit).artifacts.values():
                if e.oid == oid or e.sha256 == sha256:
                    found[e.oid] = (e.sha256, e.size)
    if len(found) > 1:
        raise UsageError(
            f"sha256 {sha256} names {len(found)} blobs ({', '.join(sorted(found))}): "
            "purge them one by one with --blob"
        )
    if found:
        ((blob, (digest, size)),) = found.items()
        return blob, digest, size
    if oid is not None and versions.has(oid):
        # Held by no version any more (a dropped one, an orphan): its bytes still count.
        digest_of = hashlib.sha256()
        try:
            with versions.objects.open_blob(oid) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest_of.update(chunk)
                size = f.size
        except IntegrityError as e:
            raise UsageError(f"--blob {oid}: {e}") from None
        return oid, digest_of.hexdigest(), size
    raise NotFoundError(f"no version holds {'blob ' + oid if oid else 'sha256 ' + str(sha256)}")


def plan(
    versions: Versions,
    heads: Mapping[str, str],
    oid: str,
    sha256: str,
    size: int,
    *,
    why: str,
    replace_with: str | None,
    at: str | None = None,
) -> PurgeReport:
    """What purging blob ``oid`` would do: every version holding it, and the tombstone."""
    when = at or now_iso()
    if replace_with is not None and len(replace_with.encode()) > MAX_TOMBSTONE:
        raise UsageError(f"--replace-with is over {MAX_TOMBSTONE} bytes (a tombstone is a note)")
    text = (
        replace_with
        if replace_with is not None
        else tombstone_text(sha256=sha256, size=size, at=when, why=why)
    )
    held = tuple(
        PurgeHolder(h.spec, h.task, h.version, h.commit, h.names)
        for h in holders(versions, heads, [oid])
    )
    return PurgeReport(oid, sha256, size, when, why, text, held)


def apply(versions: Versions, heads: Mapping[str, str], report: PurgeReport) -> PurgeReport:
    """Record the purge of ``report`` in ``refs/gitstore/purges``, then rewrite every chain
    holding the blob (the record first: a store interrupted between the two still knows the
    bytes must go, and the next purge or pull finishes the work)."""
    record = PurgeRecord(
        oid=report.oid,
        sha256=report.sha256,
        size=report.size,
        at=report.at,
        why=report.why,
        tombstone=report.tombstone,
    )
    versions.purges.add({report.oid: record})
    done = enforce(versions, heads, {report.oid: record})
    rewritten = sum(1 for r in done for new in r.mapping.values() if new is not None)
    return dataclasses.replace(report, applied=True, rewritten=rewritten)
