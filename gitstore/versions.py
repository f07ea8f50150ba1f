"""Versions: what task refs name, what each version holds, and how a new one is written.

A version is a commit whose tree holds ``.gitstore/manifest.json``; a task's ref names its latest
version, and its first parent is the previous one. :class:`Versions` is the layer between the
backends and every verb above them (the store's facade, verify, scan, query, the remotes): it
resolves addresses (``@v3``, ``@~1``, ``@<commit prefix>``), reads manifests (cached: a commit
never changes), parents and numbers, walks history, and writes new versions with the write
protocol's tail: build on the current head, compare-and-swap the ref (:mod:`gitstore.cas`), and
on a lost swap re-read and build again, so every write that returns is in the history.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from gitstore import cas
from gitstore.backend.config import DEFAULT_IDENTITY
from gitstore.backend.objects import ObjectBackend
from gitstore.backend.refs import RefBackend
from gitstore.backend.trees import CommitInfo, lookup, read_blob, read_commit, write_version
from gitstore.errors import (
    IntegrityError,
    InvalidNameError,
    TaskNotFoundError,
    VersionNotFoundError,
)
from gitstore.meta import ArtifactEntry, Manifest, decode_manifest, now_iso, parse_trailers
from gitstore.model import MANIFEST_PATH, ArtifactInfo, RemovedArtifact, Version
from gitstore.names import Address, artifact_uri, task_ref
from gitstore.records import PURGES_REF, REWRITES_REF, PurgeRecord, RecordBook, RewriteRecord

__all__ = ["MANIFEST_CACHE", "Versions", "walk_commits"]

# Decoded manifests kept per store (most recently used); a manifest is a few hundred bytes per
# artifact, and history walks (log, find, push's scan) come back to the same commits.
MANIFEST_CACHE = 4096

_T = TypeVar("_T")


def walk_commits(heads: Iterable[str], parents_of: Callable[[str], Sequence[str]]) -> Iterator[str]:
    """Every commit reachable from ``heads``, each once; parents are asked for after the caller
    has seen a commit, so ``parents_of`` may depend on what the caller learnt from it."""
    seen: set[str] = set()
    todo = list(heads)
    while todo:
        commit = todo.pop()
        if commit in seen:
            continue
        seen.add(commit)
        yield commit
        todo.extend(parents_of(commit))


class Versions:
    """The versions of a store, over its object and ref backends. Safe to share between threads.

    Args:
      objects, refs: the backends (disk or memory).
      identity: author and committer of the versions written (``name <email>``).
      cas_timeout: seconds a write keeps retrying a contended ref before ConflictError.
    """

    def __init__(
        self,
        objects: ObjectBackend,
        refs: RefBackend,
        *,
        identity: bytes = DEFAULT_IDENTITY,
        cas_timeout: float = 60.0,
    ) -> None:
        self._objects = objects
        self._refs = refs
        self.identity = identity
        self.cas_timeout = cas_timeout
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._cache_lock = threading.Lock()
        # Which commits rewrites replaced (retention, purge): resolve consults it.
        self.rewrites = RecordBook(
            objects, refs, REWRITES_REF, RewriteRecord, identity=identity, cas_timeout=cas_timeout
        )
        # Which blobs were purged (and their tombstones): purge and pull apply them.
        self.purges = RecordBook(
            objects, refs, PURGES_REF, PurgeRecord, identity=identity, cas_timeout=cas_timeout
        )

    @property
    def objects(self) -> ObjectBackend:
        """The object backend (for readers that check objects themselves: verify, validate)."""
        return self._objects

    @property
    def refs(self) -> RefBackend:
        """The ref backend."""
        return self._refs

    # -- refs ------------------------------------------------------------------------------

    def has(self, oid: str) -> bool:
        """Is object ``oid`` in the store?"""
        return self._objects.has(oid)

    def head(self, spec: str, task: str) -> str | None:
        """The latest version of ``spec/task``, or None when the task has none."""
        return self._refs.get(task_ref(spec, task))

    def retry(self, ref: str, attempt: Callable[[], _T | None], *, doing: str = "") -> _T:
        """:func:`gitstore.cas.retry` with this store's ``cas_timeout``."""
        return cas.retry(attempt, ref=ref, timeout=self.cas_timeout, doing=doing)

    # -- one version -----------------------------------------------------------------------

    def commit(self, commit: str) -> CommitInfo:
        """The commit of version ``commit``; IntegrityError if it is missing or no commit."""
        return read_commit(self._objects, commit)

    def parents(self, commit: str) -> list[str]:
        """The parents of ``commit`` (the previous version first)."""
        return list(self.commit(commit).parents)

    def number(self, commit: str) -> int:
        """The version number of ``commit`` (from its trailer, which is cheaper than the
        manifest; a merge is the larger parent's + 1)."""
        cached = self.cached(commit)
        if cached is not None:
            return cached.version
        trailers = parse_trailers(self.commit(commit).message)
        if trailers.get("Version", "").isdigit():
            return int(trailers["Version"])
        return self.manifest(commit).version

    def cached(self, commit: str) -> Manifest | None:
        """The manifest of ``commit`` if it is in the cache (nothing is read)."""
        with self._cache_lock:
            m = self._manifests.get(commit)
            if m is not None:
                self._manifests.move_to_end(commit)
            return m

    def remember(self, commit: str, manifest: Manifest) -> None:
        """Put the manifest of ``commit`` in the cache (a reader that decoded it itself)."""
        with self._cache_lock:
            self._manifests[commit] = manifest
            if len(self._manifests) > MANIFEST_CACHE:
                self._manifests.popitem(last=False)

    def manifest(self, commit: str) -> Manifest:
        """The manifest of version ``commit`` (cached: a commit never changes).

        Raises IntegrityError for a commit that is no version or whose manifest is damaged.
        """
        cached = self.cached(commit)
        if cached is not None:
            return cached
        c = self.commit(commit)
        entry = lookup(self._objects, c.tree, MANIFEST_PATH)
        if entry is None:
            raise IntegrityError(f"commit {commit} is not a gitstore version (no manifest)")
        data = read_blob(self._objects, entry.oid)
        try:
            manifest = decode_manifest(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise IntegrityError(f"version {commit}: damaged manifest ({e})") from None
        self.remember(commit, manifest)
        return manifest

    def version(
        self,
        commit: str,
        manifest: Manifest | None = None,
        *,
        created: bool = True,
        parents: Sequence[str] | None = None,
    ) -> Version:
        """Version ``commit`` as the public :class:`~gitstore.model.Version` (its manifest and
        parents are read unless given)."""
        m = self.manifest(commit) if manifest is None else manifest
        if parents is None:
            parents = self.parents(commit)
        arts = tuple(
            ArtifactInfo(
                name=name,
                oid=e.oid,
                sha256=e.sha256,
                size=e.size,
                content_type=e.content_type,
                uri=artifact_uri(m.spec, m.task, commit, name),
                created_at=e.created_at,
                executable=e.executable,
                tags=dict(e.tags),
                masked_secrets=e.masked_secrets,
                truncated=msgspec.to_builtins(e.truncated) if e.truncated else None,
            )
            for name, e in sorted(m.artifacts.items())
        )
        return Version(
            spec=m.spec,
            task=m.task,
            version=m.version,
            commit=commit,
            parents=tuple(parents),
            created_at=m.created_at,
            run_id=m.run_id,
            message=m.message,
            metadata=dict(m.metadata),
            artifacts=arts,
            conflicts=tuple(m.conflicts),
            created=created,
            removed=tuple(
                RemovedArtifact(name, r.kind, r.size, r.sha256, r.at, r.why)
                for name, r in sorted(m.removals().items())
            ),
        )

    # -- history ---------------------------------------------------------------------------

    def walk(self, heads: Iterable[str]) -> Iterator[str]:
        """Every commit reachable from ``heads``, each once (see :func:`walk_commits`)."""
        return walk_commits(heads, self.parents)

    def history(self, head: str) -> list[Version]:
        """Every version reachable from ``head``, newest first: by version number, then
        creation time, then commit id (the first-parent chain, then merged-in sides)."""
        found = [self.version(c) for c in self.walk([head])]
        found.sort(key=lambda v: (v.version, v.created_at, v.commit), reverse=True)
        return found

    def resolve(self, addr: Address) -> str:
        """The commit id that ``addr`` (``SPEC/TASK@REV``) names.

        Raises TaskNotFoundError, VersionNotFoundError, or InvalidNameError for a commit prefix
        that several versions share.
        """
        assert addr.task is not None
        where = f"{addr.spec}/{addr.task}"
        rev = addr.rev
        if rev.kind == "commit" and isinstance(rev.value, str) and len(rev.value) == 40:
            # A rewritten version resolves to the commit that holds it now (the old one may still
            # hold what the rewrite removed), a dropped one is refused as gone.
            moved = self.rewritten(addr.spec, addr.task, rev.value)
            if moved is not None:
                return moved
            # A pinned commit resolves for as long as the object exists, even if the ref is gone.
            try:
                self.commit(rev.value)
            except IntegrityError:
                raise VersionNotFoundError(f"{where} has no version {rev.value}") from None
            m = self.manifest(rev.value)
            if (m.spec, m.task) == (addr.spec, addr.task):
                return rev.value
            raise VersionNotFoundError(f"{where} has no version {rev.value}")
        head = self.head(addr.spec, addr.task)
        if head is None:
            raise TaskNotFoundError(f"no task {where}")
        if rev.kind == "latest":
            return head
        if rev.kind == "back":
            commit = head
            assert isinstance(rev.value, int)
            for _ in range(rev.value):
                parents = self.parents(commit)
                if not parents:
                    raise VersionNotFoundError(f"{where} has no version {rev} (history is shorter)")
                commit = parents[0]
            return commit
        if rev.kind == "number":
            commit_or_none: str | None = head
            while commit_or_none:
                number = self.number(commit_or_none)
                if number == rev.value:
                    return commit_or_none
                if number < int(rev.value or 0):
                    break
                parents = self.parents(commit_or_none)
                commit_or_none = parents[0] if parents else None
            raise VersionNotFoundError(f"{where} has no version {rev}")
        prefix = str(rev.value)
        matches = [c for c in self.walk([head]) if c.startswith(prefix)]
        if not matches:
            # A prefix of a commit a rewrite replaced: the version it was, if still kept.
            replaced = self.rewrites.keys(prefix)
            if len(replaced) == 1:
                moved = self.rewritten(addr.spec, addr.task, replaced[0])
                if moved is not None:
                    return moved
            matches = replaced
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidNameError(f"{where}@{prefix} is ambiguous ({len(matches)} versions match)")
        raise VersionNotFoundError(f"{where} has no version {prefix}")

    def follow(self, spec: str, task: str, commit: str) -> tuple[str | None, RewriteRecord] | None:
        """What rewrites made of version ``commit`` of ``spec/task``: ``(commit now, record)``,
        ``(None, record)`` when it was dropped, or None when no rewrite replaced it (or the
        records lead elsewhere than to this task's own version of that number: records may
        come from other stores, and one never redirects to foreign data)."""
        seen: set[str] = set()
        current: str | None = commit
        record: RewriteRecord | None = None
        while current is not None and current not in seen:
            found = self.rewrites.get(current)
            if found is None:
                break
            if (found.spec, found.task) != (spec, task):
                return None
            seen.add(current)
            record, current = found, found.new
        if record is None:
            return None
        if current is not None and self.has(current):
            m = self.manifest(current)
            if (m.spec, m.task, m.version) != (spec, task, record.version):
                return None
        return current, record

    def rewritten(self, spec: str, task: str, commit: str) -> str | None:
        """The commit that holds version ``commit`` of ``spec/task`` since a rewrite replaced
        it (following rewrites of rewrites), or None when no rewrite replaced it.

        Raises VersionNotFoundError when the version was dropped (naming when and why), or
        when the commit that holds it now is not in this store.
        """
        where = f"{spec}/{task}"
        found = self.follow(spec, task, commit)
        if found is None:
            return None
        current, record = found
        if current is None:
            why = f" ({record.why})" if record.why else ""
            raise VersionNotFoundError(
                f"{where}@{commit[:12]} (v{record.version}) is gone: dropped by "
                f"{record.by} on {record.at[:10]}{why}"
            )
        if not self.has(current):
            raise VersionNotFoundError(
                f"{where}@{commit[:12]} (v{record.version}) was rewritten to {current[:12]}, "
                "which this store does not have (pull it)"
            )
        return current

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        manifest: Manifest,
        parents: Sequence[str],
        summary: str,
        *,
        carry: Sequence[bytes] = (),
        identity: bytes | None = None,
        when: int | None = None,
    ) -> str:
        """Write a version's objects (``carry``: small blobs not written yet, then the manifest,
        trees and commit, in one pack) and return the commit id; no ref moves.

        ``identity`` and ``when`` default to the store's identity and now; merges pass fixed
        ones so that two machines merging the same heads write the same commit.
        """
        commit = write_version(
            self._objects,
            manifest,
            parents,
            summary,
            identity=identity or self.identity,
            when=int(time.time()) if when is None else when,
            carry=carry,
        )
        self.remember(commit, manifest)
        return commit

    def add(
        self,
        spec: str,
        task: str,
        apply: Callable[[Manifest | None], dict[str, ArtifactEntry]],
        *,
        run_id: str | None,
        message: str | None,
        metadata: Mapping[str, Any],
        summary: str,
        force: bool = False,
        carry: Sequence[bytes] = (),
    ) -> Version:
        """Make the next version of ``spec/task``: ``apply`` turns the head's manifest (None for
        a new task) into the new artifact set, which is written on top of the head and swapped
        in. When another writer moved the ref first, ``apply`` runs again on its version.

        When the set equals the head's (and not ``force``), nothing is written and the head is
        returned with ``created=False``. ``carry`` (small blobs) goes into the first attempt's
        pack, so a typical put writes one pack. Errors ``apply`` raises pass through.

        Raises:
          ConflictError: other writers kept winning for ``cas_timeout`` seconds.
        """
        ref = task_ref(spec, task)
        pending = list(carry)

        def attempt() -> Version | None:
            head = self._refs.get(ref)
            base = self.manifest(head) if head else None
            artifacts = apply(base)
            if head and base is not None and not force and _same_set(artifacts, base.artifacts):
                # Nothing changed: every blob is already in the head's tree, so carry is dropped.
                return self.version(head, base, created=False)
            manifest = Manifest(
                spec=spec,
                task=task,
                version=(base.version + 1) if base else 1,
                created_at=now_iso(),
                run_id=run_id,
                message=message,
                metadata=dict(metadata),
                artifacts=artifacts,
            )
            parents = [head] if head else []
            commit = self.write(manifest, parents, summary, carry=pending)
            pending.clear()
            if not self._refs.cas(ref, head, commit):
                return None
            # The parents are known: no need to read back the commit just written.
            return self.version(commit, manifest, parents=parents)

        return self.retry(ref, attempt)


def _same_set(a: Mapping[str, ArtifactEntry], b: Mapping[str, ArtifactEntry]) -> bool:
    return a.keys() == b.keys() and all(a[k].same_content(b[k]) for k in a)
