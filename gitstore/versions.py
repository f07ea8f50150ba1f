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

import contextlib
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from gitstore import aliases as _aliases
from gitstore import cas
from gitstore.backend.config import DEFAULT_IDENTITY
from gitstore.backend.objects import ObjectBackend, read_raw_many
from gitstore.backend.refs import RefBackend
from gitstore.backend.trees import (
    MODE_TREE,
    CommitInfo,
    VersionBatch,
    entry_named,
    lookup,
    parse_commit,
    read_blob,
    read_commit,
    write_version,
)
from gitstore.errors import (
    AmbiguousRevisionError,
    ConflictError,
    GitstoreError,
    IntegrityError,
    NotFoundError,
    TaskNotFoundError,
    VersionNotFoundError,
)
from gitstore.meta import (
    ArtifactEntry,
    Manifest,
    Removal,
    decode_manifest,
    now_iso,
    parse_trailers,
)
from gitstore.model import MANIFEST_PATH, ArtifactInfo, RemovedArtifact, Version
from gitstore.names import Address, artifact_uri, task_ref
from gitstore.records import PURGES_REF, REWRITES_REF, PurgeRecord, RecordBook, RewriteRecord

__all__ = ["MANIFEST_CACHE", "Change", "Versions", "is_ancestor", "walk_commits"]

# Decoded manifests kept per store (most recently used); a manifest is a few hundred bytes per
# artifact, and history walks (log, find, push's scan) come back to the same commits.
MANIFEST_CACHE = 4096
# Commits kept likewise (a few hundred bytes each): reading a version asks for its commit three
# times (the walk's parents, the manifest's tree, the version's parents), and it is read once.
COMMIT_CACHE = 4096

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
        self._commits: OrderedDict[str, CommitInfo] = OrderedDict()
        self._cache_lock = threading.Lock()
        # Which commits rewrites replaced (retention, purge): resolve consults it.
        self.rewrites = RecordBook(
            objects, refs, REWRITES_REF, RewriteRecord, identity=identity, cas_timeout=cas_timeout
        )
        # Which blobs were purged (and their tombstones): purge and pull apply them.
        self.purges = RecordBook(
            objects, refs, PURGES_REF, PurgeRecord, identity=identity, cas_timeout=cas_timeout
        )
        # Group commit: changes waiting to be landed, and whether a thread is landing some.
        self._group = threading.Condition()
        self._waiting: list[_Slot] = []
        self._leading = False

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
        """The commit of version ``commit``; IntegrityError if it is missing or no commit.

        Cached: a commit never changes (and a missing one is not cached).
        """
        with self._cache_lock:
            info = self._commits.get(commit)
            if info is not None:
                self._commits.move_to_end(commit)
                return info
        info = read_commit(self._objects, commit)
        with self._cache_lock:
            self._commits[commit] = info
            if len(self._commits) > COMMIT_CACHE:
                self._commits.popitem(last=False)
        return info

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

    def read_many(self, commits: Sequence[str]) -> list[tuple[Manifest, tuple[str, ...]] | None]:
        """The manifest and parents of each of ``commits``, or None for one that does not read
        the quick way, which :meth:`manifest` and :meth:`parents` then read the careful way
        (and say what is wrong with it, as they would have).

        For readers of every version of a store (the query index's first build): each step is
        one pass over all the commits (their commits, root trees, ``.gitstore`` trees, then
        manifests; see :func:`~gitstore.backend.objects.read_raw_many`), with the same checks
        and the same parsing as :meth:`manifest`, so a version read here reads the same there.
        Nothing is cached: such a reader keeps what it needs itself.
        """
        objects = self._objects
        infos: list[CommitInfo | None] = []
        for commit, got in zip(commits, read_raw_many(objects, commits), strict=True):
            info = None
            if got is not None and got[0] == "commit":
                with contextlib.suppress(IntegrityError):
                    info = parse_commit(commit, got[1])
            infos.append(info)
        folders = _entries(objects, [c.tree if c else None for c in infos], _MANIFEST_DIR, True)
        files = _entries(objects, folders, _MANIFEST_FILE, False)
        out: list[tuple[Manifest, tuple[str, ...]] | None] = []
        for info, got in zip(infos, _read_some(objects, files), strict=True):
            manifest = None
            if info is not None and got is not None and got[0] == "blob":
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    manifest = decode_manifest(got[1])
            out.append(None if manifest is None or info is None else (manifest, info.parents))
        return out

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

        ``@vN`` is the version numbered N anywhere in the task's history, not only on the
        first-parent chain: after a pull merged two histories that each had a v3, ``@v3`` names
        two versions and is refused as ambiguous rather than quietly meaning one of them (which
        one the first-parent chain reaches depends on the merge, so it could change meaning).

        Raises TaskNotFoundError, VersionNotFoundError, AmbiguousRevisionError (a number or a
        commit prefix that several versions share, naming each), or IntegrityError (an alias
        whose ref holds something else than a version of this task).
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
        if rev.kind == "alias":
            # An alias keeps its version reachable, so it resolves even after `rm --task`.
            try:
                commit = _aliases.lookup(
                    self._objects, self._refs, addr.spec, addr.task, str(rev.value)
                )
            except NotFoundError:
                raise VersionNotFoundError(f"{where} has no alias {rev.value!r}") from None
            # An alias still naming a commit a rewrite replaced (one pulled from a store that
            # had not seen the rewrite) names the version, where it is now.
            commit = self.rewritten(addr.spec, addr.task, commit) or commit
            m = self.manifest(commit)
            if (m.spec, m.task) != (addr.spec, addr.task):
                raise IntegrityError(
                    f"{where}@{rev.value}: the alias names {commit}, a version of {m.spec}/{m.task}"
                )
            return commit
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
            assert isinstance(rev.value, int)
            matches, walked = self.numbered(head, rev.value)
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise self._ambiguous(where, rev.value, matches, walked)
            gone = self.dropped_number(addr.spec, addr.task, rev.value)
            if gone is not None:
                # Numbers never change meaning: a dropped vN is refused as gone, saying why.
                why = f" ({gone.why})" if gone.why else ""
                raise VersionNotFoundError(
                    f"{where}@{rev} is gone: dropped by {gone.by} on {gone.at[:10]}{why}"
                )
            raise VersionNotFoundError(f"{where} has no version {rev}")
        prefix = str(rev.value)
        found = sorted(c for c in self.walk([head]) if c.startswith(prefix))
        if not found:
            # A prefix of a commit a rewrite replaced: the version it was, if still kept.
            replaced = self.rewrites.keys(prefix)
            if len(replaced) == 1:
                moved = self.rewritten(addr.spec, addr.task, replaced[0])
                if moved is not None:
                    return moved
            found = sorted(replaced)
        if len(found) == 1:
            return found[0]
        if found:
            shown = ", ".join(f"{c[:12]} (v{self.number(c)})" for c in found)
            raise AmbiguousRevisionError(
                f"{where}@{prefix} is ambiguous: {len(found)} versions' commits start with it: "
                f"{shown}; give more digits of the commit id",
                tuple(found),
            )
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

    def dropped_number(self, spec: str, task: str, number: int) -> RewriteRecord | None:
        """The record of version ``number`` of ``spec/task`` if a rewrite dropped it, else None.

        Reads the rewrite records one by one until it finds it: for the error of an ``@vN``
        that no longer resolves, not for lookups on a hot path.
        """
        for record in self.rewrites.iter_records():
            if (record.spec, record.task, record.version, record.new) == (spec, task, number, None):
                return record
        return None

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

    def numbered(self, head: str, number: int) -> tuple[list[str], dict[str, int]]:
        """Every version numbered ``number`` reachable from ``head`` (sorted), and the number of
        each commit the walk visited.

        Numbers grow along every parent edge (a merge is its larger parent's + 1, which pull
        checks of every version it brings in), so the walk stops at versions numbered below
        the one looked for instead of visiting the whole history.
        """
        found: list[str] = []
        walked: dict[str, int] = {}
        todo = [head]
        while todo:
            c = todo.pop()
            if c in walked:
                continue
            n = walked[c] = self.number(c)
            if n == number:
                found.append(c)
            elif n > number:
                todo.extend(self.parents(c))
        return sorted(found), walked

    def _ambiguous(
        self, where: str, number: int, matches: list[str], walked: dict[str, int]
    ) -> AmbiguousRevisionError:
        """The error for ``@vN`` naming several versions: each with the side of the merge that
        joined it to the others, and how to pick one."""
        merges = sorted(
            (c for c, n in walked.items() if n > number and len(self.parents(c)) > 1),
            key=lambda c: (walked[c], c),
        )
        reach: dict[str, set[str]] = {}

        def below(start: str) -> set[str]:
            # The candidates reachable from ``start`` (memoised: merges share their sides).
            if start not in reach:
                reach[start] = set(self.numbered(start, number)[0])
            return reach[start]

        parts = []
        for c in matches:
            side = ""
            for m in merges:
                sides = [i for i, p in enumerate(self.parents(m)) if c in below(p)]
                others = set().union(*(below(p) for p in self.parents(m))) - {c}
                if len(sides) == 1 and others:
                    which = "first" if sides[0] == 0 else "second" if sides[0] == 1 else "another"
                    side = f", on the {which} parent's side of merge {m[:12]} (v{walked[m]})"
                    break
            created = self.manifest(c).created_at
            parts.append(f"{c} (made {created}{side})")
        return AmbiguousRevisionError(
            f"{where}@v{number} is ambiguous: {len(matches)} versions are numbered {number} "
            f"(a pull merged histories that each had one): {'; '.join(parts)}; "
            f"pick one with {where}@<commit>",
            tuple(matches),
        )

    # -- aliases ---------------------------------------------------------------------------

    def aliases(self, spec: str, task: str) -> dict[str, str]:
        """``name -> commit`` for every alias of ``spec/task`` (refs and tags read, no manifest).

        The commits are the versions that retention must keep (an aliased version is never
        dropped); tombstones of removed aliases are not listed.
        """
        return {a.name: a.commit for a in _aliases.scan(self._objects, self._refs, spec, task)}

    def follow_aliases(self, spec: str, task: str, mapping: Mapping[str, str | None]) -> list[str]:
        """Move the aliases of ``spec/task`` after a rewrite replaced commits (``mapping``: old
        -> new, None for dropped); see :func:`gitstore.aliases.follow`. Returns their names."""
        return _aliases.follow(
            self._objects,
            self._refs,
            spec,
            task,
            mapping,
            identity=self.identity,
            timeout=self.cas_timeout,
        )

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

        Threads of one process that call this at the same time are committed together (group
        commit): one of them writes every waiting version in one pack and moves their refs
        with one round of fsyncs, and each caller gets its own version (or error) back.

        Raises:
          ConflictError: other writers kept winning for ``cas_timeout`` seconds.
        """
        change = Change(spec, task, apply, run_id, message, dict(metadata), summary, force, carry)
        result = self._group_commit(change)
        if isinstance(result, BaseException):
            raise result
        return result

    def add_many(self, changes: Sequence[Change]) -> list[Version | GitstoreError]:
        """Land ``changes`` together, in order; return each one's version or error.

        Every new version goes into ONE pack (a few, past PACK_FLUSH_BYTES) and each ref moves
        once, to the last of its changes, with one round of fsyncs for all refs
        (:meth:`RefBackend.cas_many`). Changes of the same task build on each other in order.
        A ref that another writer moved first is rebuilt on its new head and swapped again
        (the :func:`gitstore.cas.retry` loop) while the others stay landed: each task's ref
        moves to a complete version or not at all. An error ``apply`` raises belongs to its
        change alone; the later changes of that task build on the one before it.
        """
        results: list[Version | GitstoreError | None] = [None] * len(changes)
        todo = list(range(len(changes)))
        carry = [blob for c in changes for blob in c.carry]

        def attempt() -> bool | None:
            nonlocal carry
            by_ref: dict[str, list[int]] = {}
            for i in todo:
                by_ref.setdefault(task_ref(changes[i].spec, changes[i].task), []).append(i)
            batch = VersionBatch()
            batch.add_blobs(carry)
            when = int(time.time())
            moves: list[tuple[str, str | None, str, list[tuple[int, Version | GitstoreError]]]]
            moves = []
            for ref, indexes in by_ref.items():
                head = self._refs.get(ref)
                tip, tip_parents = head, None
                base = self.manifest(head) if head else None
                out: list[tuple[int, Version | GitstoreError]] = []
                for i in indexes:
                    c = changes[i]
                    try:
                        artifacts = c.apply(base)
                    except GitstoreError as e:
                        out.append((i, e))
                        continue
                    if (
                        tip
                        and base is not None
                        and not c.force
                        and _same_set(artifacts, base.artifacts)
                    ):
                        # Nothing changed: every blob is already in that tree.
                        out.append((i, self.version(tip, base, created=False, parents=tip_parents)))
                        continue
                    manifest = Manifest(
                        spec=c.spec,
                        task=c.task,
                        version=(base.version + 1) if base else 1,
                        created_at=now_iso(),
                        run_id=c.run_id,
                        message=c.message,
                        metadata=c.metadata,
                        artifacts=artifacts,
                    )
                    # What retention or purge removed stays recorded while it still applies.
                    carried = _carried(base, artifacts) if base is not None else {}
                    if carried:
                        manifest.removed = carried
                    parents = [tip] if tip else []
                    commit = batch.add_version(
                        manifest, parents, c.summary, identity=self.identity, when=when
                    )
                    self.remember(commit, manifest)
                    out.append((i, self.version(commit, manifest, parents=parents)))
                    tip, tip_parents, base = commit, parents, manifest
                moves.append((ref, head, tip or "", out))
            batch.write(self._objects)
            carry = []
            swaps = [(ref, head, tip) for ref, head, tip, _ in moves if tip and tip != head]
            if len(swaps) == 1:
                landed = [self._refs.cas(*swaps[0])]
            else:
                landed = self._refs.cas_many(swaps) if swaps else []
            moved = {swap[0] for swap, ok in zip(swaps, landed, strict=True) if ok}
            for ref, head, tip, out in moves:
                if tip and tip != head and ref not in moved:
                    continue  # lost to another writer: built again on its head next time
                for i, result in out:
                    results[i] = result
            todo[:] = [i for i in todo if results[i] is None]
            return True if not todo else None

        if todo:
            first = changes[todo[0]]
            try:
                self.retry(task_ref(first.spec, first.task), attempt)
            except ConflictError as e:
                for i in todo:
                    results[i] = e
        return [r if r is not None else ConflictError("not landed") for r in results]

    def _group_commit(self, change: Change) -> Version | BaseException:
        """Land ``change``, together with whatever other threads are landing meanwhile.

        The first caller becomes the leader: it takes every change waiting (its own among
        them), lands them with :meth:`add_many` and hands each caller its result; callers that
        arrived meanwhile wait, and one of them leads the next round with everything that
        gathered while the first one wrote and fsync'd.
        """
        slot = _Slot(change)
        with self._group:
            self._waiting.append(slot)
            while self._leading and not slot.done:
                self._group.wait()
            if slot.done:
                assert slot.result is not None
                return slot.result
            self._leading = True
            batch, self._waiting = self._waiting, []
        try:
            results: list[Version | GitstoreError] | BaseException
            try:
                results = self.add_many([s.change for s in batch])
            except BaseException as e:  # an I/O error, an interrupt: every caller gets it
                results = e
        finally:
            with self._group:
                for i, s in enumerate(batch):
                    if s is not slot:
                        s.result = results if isinstance(results, BaseException) else results[i]
                        s.done = True
                self._leading = False
                self._group.notify_all()
        if isinstance(results, BaseException):
            raise results
        return results[batch.index(slot)]


@dataclasses.dataclass
class Change:
    """One version to make (see :meth:`Versions.add`): ``apply`` turns the head's manifest
    into the new artifact set; ``carry`` holds small blobs not written yet."""

    spec: str
    task: str
    apply: Callable[[Manifest | None], dict[str, ArtifactEntry]]
    run_id: str | None
    message: str | None
    metadata: dict[str, Any]
    summary: str
    force: bool = False
    carry: Sequence[bytes] = ()


@dataclasses.dataclass(eq=False)
class _Slot:
    """A change waiting for the group commit, and what became of it."""

    change: Change
    done: bool = False
    result: Version | GitstoreError | BaseException | None = None


_MANIFEST_DIR, _MANIFEST_FILE = (part.encode() for part in MANIFEST_PATH.split("/"))


def _read_some(
    objects: ObjectBackend, oids: Sequence[str | None]
) -> list[tuple[str, bytes] | None]:
    """:func:`read_raw_many` of the ``oids`` that are not None (None for the others)."""
    got = iter(read_raw_many(objects, [o for o in oids if o is not None]))
    return [None if o is None else next(got) for o in oids]


def _entries(
    objects: ObjectBackend, trees: Sequence[str | None], name: bytes, folder: bool
) -> list[str | None]:
    """The id of entry ``name`` (a folder, if ``folder``) of each of ``trees``, where it reads
    the quick way (see :meth:`Versions.read_many`); else None."""
    out: list[str | None] = []
    for tree, got in zip(trees, _read_some(objects, trees), strict=True):
        entry = None
        if tree is not None and got is not None and got[0] == "tree":
            with contextlib.suppress(IntegrityError):
                entry = entry_named(tree, got[1], name)
        out.append(None if entry is None or (folder and entry.mode != MODE_TREE) else entry.oid)
    return out


def _carried(base: Manifest, artifacts: Mapping[str, ArtifactEntry]) -> dict[str, Removal]:
    """The base version's removal records that still describe the new set: a tombstone carried
    along unchanged, a name expired and not put again (a reader of the new version still sees
    why the bytes are not there)."""
    out = {}
    for name, r in base.removals().items():
        entry = artifacts.get(name)
        if (r.kind == "purged" and entry is not None and entry == base.artifacts.get(name)) or (
            r.kind == "expired" and entry is None
        ):
            out[name] = r
    return out


def _same_set(a: Mapping[str, ArtifactEntry], b: Mapping[str, ArtifactEntry]) -> bool:
    return a.keys() == b.keys() and all(a[k].same_content(b[k]) for k in a)


def is_ancestor(
    versions: Versions, ancestor: str, descendant: str, *, present: bool = False
) -> bool:
    """True when ``ancestor`` is ``descendant`` or reachable from it in the local store.

    Version numbers grow along every parent edge (a merge is the larger parent's + 1), so the walk
    stops at versions numbered below the one looked for instead of visiting the whole history.
    """
    if ancestor == descendant:
        return True
    # A commit fetched from elsewhere may be absent: answered without a walk. ``present``: the
    # caller read it already (a rewrite's planned head), so no existence check can misjudge it
    # while other processes merge packs under us.
    if not present and not versions.has(ancestor):
        return False
    target = versions.number(ancestor)
    seen: set[str] = set()
    todo = [descendant]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        if c == ancestor:
            return True
        if versions.number(c) <= target:
            continue
        todo.extend(versions.parents(c))
    return False
