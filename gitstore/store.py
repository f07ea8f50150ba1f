"""The store: gitstore's library facade (open, put, get, ls, log, diff, rm, verify ...).

A store is a bare Git repository. Each task's latest version is the commit at
``refs/artifacts/<spec>/<task>``; its tree holds the artifacts at their names and
``.gitstore/manifest.json``; its first parent is the previous version.

Writing follows one protocol (see :meth:`Store.put`): blobs first, then trees, manifest and commit,
then the ref moves by compare-and-swap. A writer that loses the swap re-reads the new head,
re-applies the same changes on top of it and tries again with backoff, so every put that returns is
in the history. A crash at any point leaves only unreferenced objects and temp files behind.

One :class:`Store` may be shared by threads; any number of processes may open the same store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gitstore import aliases as _aliases
from gitstore import du as _du
from gitstore import export as _export
from gitstore import gc as _gc
from gitstore import ingest, remoteheads, retention
from gitstore import names as _names
from gitstore import purge as _purge
from gitstore import retain as _retain
from gitstore import verify as _verify
from gitstore.backend import config, pins, repo
from gitstore.backend.config import Settings
from gitstore.backend.objects import (
    BlobReader,
    DiskObjects,
    MemoryObjects,
    ObjectBackend,
    Progress,
)
from gitstore.backend.refs import DiskRefs, MemoryRefs, RefBackend
from gitstore.errors import (
    ArtifactNotFoundError,
    ConflictError,
    GitstoreError,
    NotFoundError,
    SecretsFoundError,
    TaskNotFoundError,
    UsageError,
)
from gitstore.meta import (
    ArtifactEntry,
    Manifest,
    now_iso,
)
from gitstore.model import (
    Alias,
    Artifact,
    ArtifactInfo,
    Diff,
    DiskUsage,
    ExpungeReport,
    GcReport,
    Problem,
    PurgeReport,
    RetainPlan,
    SecretFinding,
    Source,
    SpecSummary,
    TaskHead,
    Version,
)
from gitstore.names import (
    REFS_PREFIX,
    Address,
    Rev,
    check_artifact_name,
    check_layout,
    task_ref,
)
from gitstore.quota import Quota, StreamCheck
from gitstore.scan import scan
from gitstore.secrets import Masker
from gitstore.versions import Change, Versions

__all__ = [
    "Alias",
    "Artifact",
    "ArtifactInfo",
    "Diff",
    "GcReport",
    "PendingPut",
    "Problem",
    "PutBatch",
    "Store",
    "Version",
    "pick",
]


class Store:
    """A gitstore: artifacts of agent runs, versioned per task, in a bare Git repository.

    Open one with :meth:`open` (on disk) or :meth:`memory` (in memory, for tests).
    """

    def __init__(
        self,
        objects: ObjectBackend,
        refs: RefBackend,
        *,
        path: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._objects = objects
        self._refs = refs
        self.path = path
        self.settings = settings or Settings()
        self._quota = Quota(path if isinstance(objects, DiskObjects) else None, self.settings)
        self.versions = Versions(
            objects,
            refs,
            identity=self.settings.identity,
            cas_timeout=self.settings.cas_timeout,
        )

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, create: bool = False, token: str | None = None
    ) -> Store:
        """Open the store at ``path`` (a bare repository, or a repository's ``.git``).

        A URL, ``http://host:port`` or ``https://...``, opens the store ``gitstore serve``
        serves there: a :class:`gitstore.client.HttpStore`, with this same API. ``token`` is
        its access token (else ``GITSTORE_TOKEN``, else git's credential helpers); ``create``
        does not apply to it.

        With ``create=True`` a missing path (or an empty folder) becomes a new bare repository.
        Settings are read from the repository's git config:

        * ``gitstore.fsync`` (default true): fsync every new object, its folder and the ref before
          a put returns, so an acknowledged put survives a power loss; false relies on atomic
          renames only (what stock git does), which survives a killed process but not a power cut.
          Files written whole (exports, ``get -o``, bundles, caches) follow it too.
        * ``gitstore.compression`` (default 1): zlib level for new objects.
        * ``gitstore.casTimeout`` (default 60): seconds a put keeps retrying a contended ref.
        * ``user.name`` / ``user.email``: the identity on version commits.

        Raises:
          StoreNotFoundError: nothing at ``path`` (and not ``create``).
          StoreError: something else is there, or its config holds a bad ``gitstore.*`` value.
        """
        location = os.fspath(path)
        if "://" in location:
            return _open_url(location, token)
        if token is not None:
            raise UsageError("token= is for a served store (http:// or https://), not a path")
        gitdir = repo.locate(path, create=create)
        s = config.settings(gitdir)
        objects = DiskObjects(
            os.path.join(gitdir, "objects"), fsync=s.fsync, compression=s.compression
        )
        return cls(objects, DiskRefs(gitdir, fsync=s.fsync), path=gitdir, settings=s)

    @classmethod
    def memory(cls) -> Store:
        """A store that lives in memory only; it behaves like a disk store."""
        return cls(MemoryObjects(), MemoryRefs())

    def close(self) -> None:
        """Release open files (pack handles). The store may not be used afterwards."""
        self._objects.close()

    def __enter__(self) -> Store:
        return self

    def __del__(self) -> None:
        # A store dropped without close() (a runner that forgot, an exception on the way) closes
        # its pack files here, quietly: left to dulwich, each open pack warns at garbage
        # collection or at interpreter exit ("unclosed Pack ..."), on a runner's stderr.
        with contextlib.suppress(Exception):
            self.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    @staticmethod
    def check_put(
        address: str,
        artifacts: Mapping[str, Source | Artifact],
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        """Raise what :meth:`put` would raise for its arguments alone, touching no store.

        Lets a caller refuse bad input before creating a store for it (``gitstore put`` on a
        store that does not exist yet). Paths are checked for existence and readability; their
        bytes are not read, and streams are not touched.
        """
        ingest.prepare(address, artifacts, content_type, tags, metadata, follow_symlinks)

    def put(
        self,
        address: str,
        artifacts: Mapping[str, Source | Artifact],
        *,
        run_id: str | None = None,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        replace: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        mask_secrets: bool | Masker = False,
        follow_symlinks: bool = False,
    ) -> Version:
        """Store ``artifacts`` as ONE new version of ``SPEC/TASK`` and return it.

        Args:
          address: ``SPEC/TASK`` (no revision).
          artifacts: name -> value. Values are bytes, str (UTF-8 text), a ``pathlib.Path`` to a
            file or a folder (its files go under ``name/``; name ``"."`` puts them at the top),
            a binary stream, or an :class:`Artifact` carrying one of these plus its content type,
            tags and executable bit.
          run_id, message, metadata: recorded on the version (metadata: JSON-able key/values).
          content_type, tags: defaults for artifacts that carry none.
          replace: start from an empty set instead of the previous version's artifacts.
          force: make a new version even when nothing changed.
          progress: called with the number of bytes read as large inputs stream in.
          mask_secrets: replace secrets with ``***MASKED***`` on the way in (True: a default
            :class:`~gitstore.secrets.Masker`, which reads ``os.environ``; or a Masker of the
            caller's), in the artifacts' bytes (the count goes into each manifest entry) and in
            the message, metadata, tags and content types; a ``run_id`` holding one is refused
            (SecretsFoundError). Binary content (:func:`gitstore.secrets.is_binary`) is stored
            as is. Off by default: a plain put is byte-exact.
          follow_symlinks: inside a folder, follow symbolic links to files (wherever they
            point). Off by default: a folder put reads only files inside the folder and refuses
            any symbolic link in it. Links to folders are always refused (they can loop). A path
            given directly as a value is followed either way: the caller named it.

        The new version holds the previous version's artifacts with these added or replaced
        (unless ``replace``). When that leaves the artifacts exactly as they were, no version is
        made and the latest one is returned with ``created=False`` (unless ``force``).

        Raises:
          InvalidNameError: a bad address or artifact name (nothing is written).
          InputError: a path that is missing, unreadable or changed while read, or a symbolic
            link inside a folder (nothing is referenced; blobs already written are unreferenced
            and removed by gc).
          ConflictError: the ref stayed contended for ``gitstore.casTimeout`` seconds.
          SecretsFoundError: with ``mask_secrets``, ``run_id`` holds a secret (nothing is
            written).
          QuotaExceededError: the put would pass ``gitstore.maxSize`` (StoreFullError) or an
            artifact ``gitstore.maxArtifactSize`` (ArtifactTooLargeError); nothing is written
            (see :mod:`gitstore.quota`).
        """
        staged = self._check(
            address,
            artifacts,
            run_id=run_id,
            message=message,
            metadata=metadata,
            content_type=content_type,
            tags=tags,
            replace=replace,
            force=force,
            mask_secrets=mask_secrets,
            follow_symlinks=follow_symlinks,
        )
        # Pinned from the first blob found already stored until the ref has moved: gc and
        # expunge remove no object meanwhile (see gitstore.backend.pins).
        with self._pinned():
            reader = self._read(staged, progress)
            version = self.versions.add(
                staged.spec,
                staged.task,
                staged.apply,
                run_id=run_id,
                message=staged.message,
                metadata=staged.metadata,
                summary=staged.summary,
                force=force,
                carry=reader.batch.items,
            )
        # The stat index learns only from puts that landed: a refused put writes nothing.
        reader.save_caches()
        self._count(staged, version)
        return version

    def _pinned(self) -> contextlib.AbstractContextManager[None]:
        """A pin on a store on disk (see :mod:`gitstore.backend.pins`); nothing in memory."""
        if self.path is None or not isinstance(self._objects, DiskObjects):
            return contextlib.nullcontext()
        return pins.pinned(self.path)

    def _count(self, staged: _Staged, version: Version) -> None:
        """Tell the quota what a landed put added (its artifacts' full sizes, an upper bound)."""
        if self._quota.active and version.created:
            self._quota.added(sum(e.size for e in staged.changes.values()))

    def put_many(
        self,
        items: Iterable[tuple[str, Mapping[str, Source | Artifact]]],
        *,
        run_id: str | None = None,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        replace: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        mask_secrets: bool | Masker = False,
        follow_symlinks: bool = False,
    ) -> list[Version]:
        """Store several versions at once: ``[(address, artifacts), ...]`` with the keywords of
        :meth:`put` applied to each; return their versions in the same order.

        The same as a :meth:`put` of each item in turn (an address given twice makes two
        versions, the second on top of the first), but every item is checked before anything
        is written, their small objects go into ONE pack, and each task's ref moves once, all
        refs with one round of fsyncs: with ``gitstore.fsync`` on, many small versions cost
        about what one does. See also :meth:`batch`.

        Each task's ref moves to a complete version or not at all; the refs of different tasks
        move one by one (there is no all-or-nothing across tasks). Once this returns, every
        version is durable and in history.

        Raises:
          The errors of :meth:`put`, for any item, before anything is written. An error that
          only shows while landing (an artifact name that clashes with one a concurrent writer
          just added, ConflictError) is raised after the other items landed.
        """
        return _raise_first(
            self._put_staged(
                [
                    self._check(a, x, **kw)
                    for a, x, kw in _items(
                        items,
                        dict(
                            run_id=run_id,
                            message=message,
                            metadata=metadata,
                            content_type=content_type,
                            tags=tags,
                            replace=replace,
                            force=force,
                            mask_secrets=mask_secrets,
                            follow_symlinks=follow_symlinks,
                        ),
                    )
                ],
                progress,
            )
        )

    def batch(self) -> PutBatch:
        """Gather puts and land them together when the block ends (see :meth:`put_many`)::

            with store.batch() as b:
                first = b.put("spec/task1", {"log.txt": log})
                b.put("spec/task2", {"log.txt": other}, run_id="r7")
            first.version  # set once the block has ended

        ``b.put`` takes the arguments of :meth:`put`, checks them and reads the artifacts' bytes
        at once (a file changed afterwards does not change what is stored), and returns a
        :class:`PendingPut` whose ``version`` is set when the batch lands at the end of the
        block. Nothing is visible to readers before that. If the block raises, nothing lands
        (blobs already written stay unreferenced until gc) and the error passes through.
        """
        blobs = ingest.Batch(self._objects)

        def land(staged: list[tuple[_Staged, ingest.Ingest]]) -> list[Version | GitstoreError]:
            return self._land([s for s, _ in staged], [r for _, r in staged], blobs)

        # The pin spans the whole block: objects a b.put finds stored must stay until it lands.
        return PutBatch(lambda a, x, kw: self._stage(a, x, kw, blobs), land, self._pinned())

    def _check(
        self,
        address: str,
        artifacts: Mapping[str, Source | Artifact],
        *,
        run_id: str | None = None,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        replace: bool = False,
        force: bool = False,
        mask_secrets: bool | Masker = False,
        follow_symlinks: bool = False,
    ) -> _Staged:
        """Every check of a put before a byte is written, and its fields masked if asked."""
        spec, task, inputs = ingest.prepare(
            address, artifacts, content_type, tags, metadata, follow_symlinks
        )
        names = [i.name for i in inputs]
        if not replace:
            # Refuse a clash with the current version's names before writing anything (a clash
            # made by a concurrent writer meanwhile is still caught when the version is built).
            head = self.versions.head(spec, task)
            if head is not None:
                check_layout([*self.versions.manifest(head).artifacts, *names])
        stream_check = None
        if self._quota.active:
            # Quotas refuse before anything is written; streams are checked as they are read.
            sizes = [(i.name, _known_size(i)) for i in inputs if i.stream is None]
            self._quota.check_put(sizes)
            stream_check = self._quota.stream_check(sizes)
        masker = Masker() if mask_secrets is True else (mask_secrets or None)
        if masker is not None:
            message, metadata = ingest.mask_fields(masker, run_id, message, metadata, inputs)
        return _Staged(
            spec,
            task,
            inputs,
            masker,
            run_id,
            message,
            dict(metadata or {}),
            replace,
            force,
            stream_check,
        )

    def _read(
        self, staged: _Staged, progress: Progress | None, blobs: ingest.Batch | None = None
    ) -> ingest.Ingest:
        """Read a checked put's inputs into blobs (small ones gather in ``blobs``, or in the
        reader's own batch); sets ``staged.changes``."""
        reader = ingest.Ingest(
            self._objects,
            self.path,
            fsync=self.settings.fsync,
            stream_check=staged.stream_check,
            batch=blobs,
        )
        now = now_iso()
        staged.changes = {
            p.name: p.entry(now) for p in reader.store(staged.inputs, progress, staged.masker)
        }
        return reader

    def _put_staged(
        self, staged: Sequence[_Staged], progress: Progress | None
    ) -> list[Version | GitstoreError]:
        """Read every checked put's bytes, then land them all together (one pack)."""
        blobs = ingest.Batch(self._objects)
        with self._pinned():
            readers = [self._read(s, progress, blobs) for s in staged]
            return self._land(staged, readers, blobs)

    def _stage(
        self,
        address: str,
        artifacts: Mapping[str, Source | Artifact],
        keywords: dict[str, Any],
        blobs: ingest.Batch,
    ) -> tuple[_Staged, ingest.Ingest]:
        """Check one put and read its bytes (small blobs gather in ``blobs``): a batch's put."""
        progress = keywords.pop("progress", None)
        staged = self._check(address, artifacts, **keywords)
        return staged, self._read(staged, progress, blobs)

    def _land(
        self, staged: Sequence[_Staged], readers: Sequence[ingest.Ingest], blobs: ingest.Batch
    ) -> list[Version | GitstoreError]:
        """Land puts whose bytes are read, together (see :meth:`Versions.add_many`)."""
        changes = [
            Change(
                s.spec,
                s.task,
                s.apply,
                s.run_id,
                s.message,
                s.metadata,
                s.summary,
                s.force,
                blobs.items if i == 0 else (),
            )
            for i, s in enumerate(staged)
        ]
        results = self.versions.add_many(changes)
        for s, reader, result in zip(staged, readers, results, strict=True):
            if isinstance(result, Version):
                reader.save_caches()
                self._count(s, result)
        return results

    def rm(
        self,
        address: str,
        names: Sequence[str],
        *,
        run_id: str | None = None,
        message: str | None = None,
    ) -> Version:
        """Make a new version of ``SPEC/TASK`` without ``names`` (a folder name removes its files).

        Raises ArtifactNotFoundError, before writing anything, if a name matches nothing.
        """
        addr = _names.parse_address(address, need_task=True, allow_rev=False)
        assert addr.task is not None
        if not names:
            raise UsageError("rm needs at least one artifact name")
        for n in names:
            check_artifact_name(n)

        def apply(base: Manifest | None) -> dict[str, ArtifactEntry]:
            if base is None:
                raise TaskNotFoundError(f"no task {addr.spec}/{addr.task}")
            result = dict(base.artifacts)
            for n in names:
                hit = [k for k in result if k == n or k.startswith(n + "/")]
                if not hit:
                    raise ArtifactNotFoundError(
                        f"{addr.spec}/{addr.task}@v{base.version} has no artifact {n!r}"
                    )
                for k in hit:
                    del result[k]
            return result

        return self.versions.add(
            addr.spec,
            addr.task,
            apply,
            run_id=run_id,
            message=message,
            metadata={},
            summary=f"rm {', '.join(names)}"[:200],
        )

    def rm_task(self, address: str, *, expect: str | None = None) -> str:
        """Delete the task's ref; returns the commit it pointed at.

        The versions stay in the object database (URIs that pin them keep resolving) until
        ``gc`` prunes unreachable objects. With ``expect``, delete only if the ref still points
        at that commit, else raise ConflictError (a writer added a version since it was read).
        """
        addr = _names.parse_address(address, need_task=True, allow_rev=False)
        assert addr.task is not None
        ref = task_ref(addr.spec, addr.task)

        def attempt() -> str | None:
            head = self._refs.get(ref)
            if head is None:
                raise TaskNotFoundError(f"no task {addr.spec}/{addr.task}")
            if expect is not None and head != expect:
                raise ConflictError(f"{addr.spec}/{addr.task} has a newer version {head[:12]}")
            return head if self._refs.delete(ref, head) else None

        return self.versions.retry(ref, attempt)

    # -- reading -------------------------------------------------------------------------------

    def specs(self) -> list[str]:
        """Every spec that has at least one task, sorted."""
        return [s for s in self._refs.children(REFS_PREFIX) if _valid_component(s)]

    def tasks(self, spec: str) -> list[str]:
        """Every task of ``spec``, sorted (reads ref names only)."""
        _names.check_component(spec, "spec")
        return [t for t in self._refs.children(f"{REFS_PREFIX}{spec}/") if _valid_component(t)]

    def heads(self, spec: str | None = None) -> dict[str, str]:
        """``SPEC/TASK -> latest commit`` for every task (of ``spec`` if given)."""
        prefix = (
            REFS_PREFIX if spec is None else f"{REFS_PREFIX}{_names.check_component(spec, 'spec')}/"
        )
        cut = len(REFS_PREFIX)
        valid = _names.is_component
        refs = self._refs.items(prefix)
        # One pass keeping the names, one sort of plain strings (all below one prefix, so in
        # the order of their keys): at 100k tasks every step per ref shows.
        if spec is not None:
            start = len(prefix)
            # A deeper ref fails: "/" is in no name. The spec was checked above.
            names = [ref for ref in refs if valid(ref[start:])]
        else:
            names = []
            for ref in refs:
                first, _, task = ref[cut:].partition("/")
                if valid(task) and valid(first):
                    names.append(ref)
        names.sort()
        return {ref[cut:]: refs[ref] for ref in names}

    def heads_in(self, scope: str | None = None) -> dict[str, str]:
        """``SPEC/TASK -> latest commit`` for a scope: everything (None), ``SPEC`` or ``SPEC/TASK``.

        Raises NotFoundError for a spec with no task and TaskNotFoundError for a task with no
        version: a scope that matches nothing is a typo far more often than an empty answer.
        """
        if scope is None:
            return self.heads()
        addr = _names.parse_address(scope, allow_rev=False)
        if addr.task is None:
            heads = self.heads(addr.spec)
            if not heads:
                raise NotFoundError(f"no spec {addr.spec!r} (no task has a version)")
            return heads
        head = self._refs.get(task_ref(addr.spec, addr.task))
        if head is None:
            raise TaskNotFoundError(f"no task {addr.spec}/{addr.task}")
        return {f"{addr.spec}/{addr.task}": head}

    def spec_summaries(self) -> list[SpecSummary]:
        """Every spec with its number of tasks, by name (``ls``; reads ref names only)."""
        return [SpecSummary(spec, len(self.tasks(spec))) for spec in self.specs()]

    def task_heads(self, spec: str) -> list[TaskHead]:
        """The tasks of ``spec`` with their latest commits (``ls SPEC``; reads refs only).

        Raises NotFoundError when the spec has no task.
        """
        cut = len(spec) + 1
        return [
            TaskHead(spec, key[cut:], commit)
            for key, commit in self.heads_in(_names.check_component(spec, "spec")).items()
        ]

    def show(self, address: str) -> Version:
        """The version ``SPEC/TASK[@REV]`` with its metadata, artifacts and aliases."""
        addr = _names.parse_address(address, need_task=True)
        assert addr.task is not None
        version = self.versions.version(self.versions.resolve(addr))
        return _with_aliases([version], self.versions.aliases(addr.spec, addr.task))[0]

    def log(self, address: str, *, limit: int | None = None) -> list[Version]:
        """Versions of ``SPEC/TASK`` newest first: the first-parent chain, then merged-in sides.

        Every version reachable from the head is listed once, ordered by version number then
        creation time (newest first), each with the aliases that name it.
        """
        addr = _names.parse_address(address, need_task=True)
        assert addr.task is not None
        found = self.versions.history(self.versions.resolve(addr))
        found = found[:limit] if limit is not None else found
        return _with_aliases(found, self.versions.aliases(addr.spec, addr.task))

    # -- aliases -------------------------------------------------------------------------------

    def alias(self, address: str, name: str) -> Alias:
        """Name version ``SPEC/TASK[@REV]`` ``name``, so that ``SPEC/TASK@name`` resolves to it.

        An alias already set is moved (by compare-and-swap, like every ref move). The name must
        not read as a revision (:func:`gitstore.names.check_alias`: not ``vN``, not only hex
        digits, not ``HEAD``/``latest``). An aliased version is never dropped by retention, and
        aliases travel with push, pull and bundles (see :mod:`gitstore.aliases` for how two
        stores that disagree agree).

        Raises InvalidNameError for a bad name, SecretsFoundError for a name shaped like a
        token (a name is shown, listed and pushed everywhere, and cannot be masked), the resolve
        errors for a bad address.
        """
        addr = _names.parse_address(address, need_task=True)
        assert addr.task is not None
        _names.check_alias(name)
        if Masker(env={}).mask(name.encode())[1]:
            raise SecretsFoundError(f"alias {name[:4]}... is shaped like a secret; pick a name")
        commit = self.versions.resolve(addr)
        value, _ = _aliases.set_alias(
            self._objects,
            self._refs,
            addr.spec,
            addr.task,
            name,
            commit,
            identity=self.settings.identity,
            timeout=self.settings.cas_timeout,
        )
        return self._alias(value)

    def unalias(self, address: str, name: str) -> Alias:
        """Remove alias ``name`` of ``SPEC/TASK``; return what it named.

        Raises NotFoundError when the task has no such alias.
        """
        addr = _names.parse_address(address, need_task=True, allow_rev=False)
        assert addr.task is not None
        _names.check_alias(name)
        before = _aliases.remove(
            self._objects,
            self._refs,
            addr.spec,
            addr.task,
            name,
            identity=self.settings.identity,
            timeout=self.settings.cas_timeout,
        )
        return self._alias(before)

    def aliases(self, scope: str | None = None) -> list[Alias]:
        """Every alias of the store, of ``SPEC`` or of ``SPEC/TASK``, by spec, task and name."""
        spec = task = None
        if scope is not None:
            addr = _names.parse_address(scope, allow_rev=False)
            spec, task = addr.spec, addr.task
        return [self._alias(v) for v in _aliases.scan(self._objects, self._refs, spec, task)]

    def _alias(self, value: _aliases.AliasValue) -> Alias:
        return Alias(
            spec=value.spec,
            task=value.task,
            name=value.name,
            commit=value.commit,
            version=self.versions.number(value.commit),
            set_at=_aliases.set_at(value.tag),
            tag=value.tag.oid,
        )

    def iter_versions(self, address: str) -> Iterator[Version]:
        """First-parent chain of ``SPEC/TASK[@REV]``, newest first, read lazily."""
        addr = _names.parse_address(address, need_task=True)
        commit: str | None = self.versions.resolve(addr)
        while commit:
            v = self.versions.version(commit)
            yield v
            commit = v.parents[0] if v.parents else None

    def diff(self, old: str, new: str | None = None) -> Diff:
        """What changed from version ``old`` to version ``new``.

        ``new`` defaults to the latest version of the same task; when ``old`` names no revision
        either, the latest version is compared with its parent (what the latest put changed).
        """
        a = _names.parse_address(old, need_task=True)
        if new is None:
            b = dataclasses.replace(a, rev=_names.LATEST)
            if a.rev.kind == "latest":
                a = dataclasses.replace(a, rev=Rev("back", 1))
        else:
            b = _names.parse_address(new, need_task=True)
        va = self._show_addr(a)
        vb = self._show_addr(b)
        ea = {x.name: x for x in va.artifacts}
        eb = {x.name: x for x in vb.artifacts}
        added = tuple(sorted(set(eb) - set(ea)))
        removed = tuple(sorted(set(ea) - set(eb)))
        changed = tuple(
            sorted(
                n
                for n in set(ea) & set(eb)
                if (ea[n].oid, ea[n].executable, ea[n].content_type, dict(ea[n].tags))
                != (eb[n].oid, eb[n].executable, eb[n].content_type, dict(eb[n].tags))
            )
        )
        return Diff(va, vb, added, removed, changed)

    def _show_addr(self, addr: Address) -> Version:
        return self.versions.version(self.versions.resolve(addr))

    def artifact(self, target: str, name: str | None = None) -> ArtifactInfo:
        """The :class:`ArtifactInfo` of ``name`` in ``SPEC/TASK[@REV]``, or of a URI."""
        return self._locate(target, name)[1]

    def get(self, target: str, name: str | None = None, *, verify: bool = False) -> bytes:
        """The bytes of an artifact: ``get("spec/task@v2", "log.log")`` or ``get(uri)``."""
        with self.open_artifact(target, name, verify=verify) as f:
            return f.read()

    def open_artifact(
        self, target: str, name: str | None = None, *, verify: bool = False
    ) -> BlobReader:
        """A stream over an artifact's bytes that never holds the whole blob in memory.

        With ``verify=True`` the sha256 is recomputed as it is read and an
        :class:`~gitstore.errors.IntegrityError` raised at the end on a mismatch.
        """
        _, info = self._locate(target, name)
        return self._objects.open_blob(info.oid, info.sha256 if verify else None)

    def text(self, target: str, name: str | None = None, *, encoding: str = "utf-8") -> str:
        """An artifact decoded as text."""
        return self.get(target, name).decode(encoding)

    def json(self, target: str, name: str | None = None) -> Any:
        """An artifact parsed as JSON."""
        data = self.get(target, name)
        try:
            return json.loads(data)
        except ValueError as e:
            raise UsageError(f"{target} {name or ''}: not JSON ({e})".replace("  ", " ")) from None

    def resolve(self, uri: str) -> ArtifactInfo:
        """The artifact a ``gitstore://SPEC/TASK@COMMIT/NAME`` URI pins."""
        return self._locate(uri, None)[1]

    def export(
        self,
        address: str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        names: Sequence[str] | None = None,
    ) -> list[str]:
        """Write every artifact of ``SPEC/TASK[@REV]`` under folder ``dest``; return the paths.

        ``names`` limits it to those artifacts (a folder name takes every file under it), each
        written to ``dest/NAME`` the same way; a name the version lacks raises
        ArtifactNotFoundError before anything is written. (One artifact to a file of any name:
        :meth:`save_artifact`.)

        Files are written to a temp name and renamed, so a file is either whole or absent;
        executable bits are restored; existing files of the same names are replaced.

        Nothing is written outside ``dest``, whatever the store holds: every name is checked
        again (a version may have come from stock git), and a path that would go through or
        over a symbolic link already inside ``dest`` is refused. ``dest`` itself may be a link.

        Raises:
          InvalidNameError: a name that is not a valid artifact name, or whose path meets a
            symbolic link in ``dest``; raised before anything is written.
          UsageError: ``dest`` exists and is not a folder.
          OSError: a file or folder that cannot be written.
        """
        version = pick(self.show(address), names)
        return _export.export(
            self._objects, version, dest, fsync=self.settings.fsync, progress=progress
        )

    def save_artifact(
        self,
        target: str,
        dest: str | os.PathLike[str],
        name: str | None = None,
        *,
        verify: bool = False,
        progress: Progress | None = None,
    ) -> ArtifactInfo:
        """Write an artifact's bytes to file ``dest``, whole or not at all; return what it was.

        ``target`` and ``name`` are as for :meth:`get`. The bytes stream through a temp file
        beside ``dest`` that is renamed into place (with the artifact's executable bit), so
        ``dest`` is never half-written; with ``verify`` a sha256 mismatch raises IntegrityError
        and leaves ``dest`` untouched.

        Raises:
          OSError: ``dest`` cannot be written (the error names ``dest``).
        """
        _, info = self._locate(target, name)
        _export.save(
            self._objects, info, dest, fsync=self.settings.fsync, verify=verify, progress=progress
        )
        return info

    def _locate(self, target: str, name: str | None) -> tuple[Version, ArtifactInfo]:
        if target.startswith(_names.URI_SCHEME):
            if name is not None:
                raise UsageError("give either a gitstore:// URI or an address and a name, not both")
            uri = _names.parse_uri(target)
            addr = Address(uri.spec, uri.task, uri.rev)
            name = uri.name
        else:
            addr = _names.parse_address(target, need_task=True)
            if name is None:
                raise UsageError(f"{target}: which artifact? (give a name)")
            check_artifact_name(name)
        version = self.versions.version(self.versions.resolve(addr))
        return version, version.artifact(name)

    # -- verify --------------------------------------------------------------------------------

    def verify(self, scope: str | None = None) -> list[Problem]:
        """Recompute the sha256 of every artifact reachable from the refs (or from one spec or
        task) and check every object on the way; return every problem found (empty: all good).
        """
        return _verify.verify(self.versions, self.heads_in(scope))

    def scan(
        self, scope: str | None = None, *, masker: Masker | None = None
    ) -> list[SecretFinding]:
        """Secret-shaped strings stored in any version of ``scope`` (None, SPEC or SPEC/TASK).

        Every blob in each version's tree and every field (message, run id, metadata, tags ...)
        is read; each finding names spec, task, commit and where (artifact and line, or field),
        never the secret; see :mod:`gitstore.scan`. ``masker`` says what counts (default: token
        shapes only).
        """
        return list(scan(self.versions, self.heads_in(scope), masker=masker))

    # -- maintenance -------------------------------------------------------------------------

    def retain(
        self,
        scope: Sequence[str] = (),
        *,
        keep_last: int | None = None,
        keep_within: str | None = None,
        keep_daily: int | None = None,
        keep_weekly: int | None = None,
        keep_monthly: int | None = None,
        keep_tags: Sequence[str] = (),
        content_type: str | None = None,
        min_copies: int | None = None,
        force: bool = False,
        apply: bool = False,
    ) -> RetainPlan:
        """Plan which versions of the tasks in ``scope`` (SPEC or SPEC/TASK each; none: all)
        stay and which go; with ``apply``, do it. See :mod:`gitstore.retention` for the rules.

        A version stays when ANY rule keeps it: ``keep_last`` (the N newest), ``keep_within``
        (``12h``, ``7d``, ``2w``, ``6m``, ``1y``), ``keep_daily``/``weekly``/``monthly`` (the
        newest of each of the last N days, weeks, months that have versions, UTC),
        ``keep_tags`` (``KEY=VALUE``: an artifact's tag or a metadata value). With
        ``content_type`` (``text/x-log``, ``text/*``) the rules drop only artifacts of that
        type, from the versions they do not keep. Given no rule, the store's policy applies
        (``[gitstore "retain"]`` and its per-spec and per-type sections in its git config).
        The latest version of each task and versions an alias names always stay whole; so do
        versions known to be on fewer than ``min_copies`` remotes (default: the config's
        ``minCopies``, else 0) unless ``force``.

        Without ``apply`` nothing is written: the plan says what would go, what stays and by
        which rule, and the bytes freed (by the next gc past its grace period). With it, each
        task's chain is rewritten from its first dropped version (numbers, artifacts and
        metadata of kept versions unchanged; expired artifacts recorded in their manifests;
        URIs of kept versions still resolve, those of dropped ones are refused as gone), by
        compare-and-swap on the head it was planned from: a version put meanwhile is kept.

        Raises:
          UsageError: a bad rule, or no rule given and none in the store's config.
          StoreError: the config's policy holds a bad value.
          NotFoundError: a scope that matches no task.
          ConflictError: writers kept a task's ref busy for ``gitstore.casTimeout`` seconds
            (tasks rewritten before it are recorded and stay rewritten).
        """
        rules = retention.command_policy(
            keep_last=keep_last,
            keep_within=keep_within,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_tags=keep_tags,
            content_type=content_type,
        )
        if min_copies is not None and min_copies < 0:
            raise UsageError(f"--min-copies must be 0 or more, not {min_copies}")
        stored = retention.parse_policy(
            config.subsections(self.path, "gitstore") if self.path is not None else {}
        )
        copies = stored.default.min_copies if min_copies is None else min_copies
        if rules is None and not stored:
            raise UsageError(
                "no retention rule: give --keep-last, --keep-within, --keep-daily, --keep-weekly, "
                '--keep-monthly or --keep-tag, or set them in the store\'s [gitstore "retain"]'
            )
        # Rules given here replace the store's whole policy for this run, type rules included.
        given = None
        if rules is not None:
            types = {content_type.lower(): rules} if content_type else {}
            given = retention.Policy(None if content_type else rules, types)

        def policy_for(spec: str) -> retention.Policy:
            chosen = given if given is not None else stored.for_spec(spec)
            return dataclasses.replace(chosen, min_copies=copies, force=force)

        heads: dict[str, str] = {}
        items: Sequence[str | None] = list(scope) or [None]
        for item in items:
            heads.update(self.heads_in(item))
        remote_heads = remoteheads.read(self.path) if self.path is not None else {}
        # A version with an alias is never dropped (nor loses artifacts): the planner keeps it.
        protected = {k: set(self.versions.aliases(*k.split("/")).values()) for k in heads}
        return _retain.retain(
            self.versions,
            heads,
            policy_for,
            apply=apply,
            protected=protected,
            remote_heads=remote_heads,
        )

    def gc(self, *, prune_after: float = 14 * 86400, dry_run: bool = False) -> GcReport:
        """Clean up after crashed or abandoned writes; safe while other writers run.

        Removes stale temp files and dead writers' ref locks, merges small packs, and prunes
        unreachable loose objects older than ``prune_after`` seconds (see :mod:`gitstore.gc`).
        An in-memory store has nothing to clean.

        Raises:
          IntegrityError: an object the refs reach cannot be read (missing, damaged, a pack
            without its index ...); nothing was merged or pruned, and the message names it.
        """
        if not isinstance(self._objects, DiskObjects) or not isinstance(self._refs, DiskRefs):
            return GcReport(dry_run=dry_run)
        assert self.path is not None
        return _gc.collect(
            self.path, self._objects, self._refs, prune_after=prune_after, dry_run=dry_run
        )

    def du(self, scope: str | None = None) -> DiskUsage:
        """Bytes on disk and logical bytes of the store (or of ``SPEC`` or ``SPEC/TASK``),
        per spec, task and content type, every object counted once (see :mod:`gitstore.du`
        for what "on disk" means for a packed object and to whom a shared one is attributed).
        A store in memory has no bytes on disk: only its logical bytes are counted.

        Raises:
          NotFoundError: ``scope`` names a spec or task that has no version.
          IntegrityError: something the refs reach cannot be read.
        """
        return _du.du(self.versions, self.heads_in(scope), scope)

    def expunge(self, oids: Iterable[str], *, wait: float = _gc.REMOVE_WAIT) -> ExpungeReport:
        """Remove objects ``oids``, which no ref may reach, from the store now: no grace period.

        Loose copies are deleted and every pack holding one is rewritten without it (its other
        entries copied raw), so their bytes are in no file of the store when this returns (see
        :func:`gitstore.gc.expunge`). Safe beside writers: a put that found one of them stored
        before this call finishes first, and then its ref reaches it, so it is refused.

        Raises:
          UsageError: an id that is not 40 lowercase hex digits, or an object a ref reaches
            (nothing removed).
          IntegrityError: what the refs reach cannot be read, or a pack that may hold them
            cannot be (nothing removed).
          ConflictError: another gc, or writers' pins, kept the store busy for ``wait``
            seconds (nothing removed).
        """
        if isinstance(self._objects, MemoryObjects):
            return _gc.expunge_memory(self._objects, self._refs.items("refs/"), oids)
        if not isinstance(self._objects, DiskObjects) or not isinstance(self._refs, DiskRefs):
            raise UsageError("expunge works on a store on disk or in memory")
        assert self.path is not None
        return _gc.expunge(self.path, self._objects, self._refs, oids, wait=wait)

    def purge(
        self,
        target: str | None = None,
        name: str | None = None,
        *,
        blob: str | None = None,
        sha256: str | None = None,
        replace_with: str | None = None,
        why: str = "",
        apply: bool = False,
    ) -> PurgeReport:
        """Replace bytes that must not be kept (a leaked secret) by a tombstone, everywhere.

        The bytes are named by an artifact (``target`` ``SPEC/TASK[@REV]`` and ``name``, or a
        URI), by ``blob`` id or by ``sha256``. Every version of every task holding them is
        found; without ``apply`` that is all (a dry run). With ``apply`` the purge is recorded
        in ``refs/gitstore/purges`` (push, pull and bundles carry it, and stores that learn of
        it purge their own copies), every chain holding the bytes is rewritten with the
        tombstone in their place (``replace_with``, or a note saying what was purged, when and
        ``why``; each manifest records it) and the old blob is expunged, so the bytes are in
        no object of the store when this returns. Copies on other machines are not touched:
        rotate the secret.

        Raises:
          UsageError: not exactly one way of naming the bytes, a malformed id, or a ref outside
            the task refs still reaches the bytes (expunge refuses; the chains are rewritten).
          NotFoundError: nothing holds those bytes.
        """
        if sum(x is not None for x in (target, blob, sha256)) != 1:
            raise UsageError("purge takes SPEC/TASK[@REV] NAME, a blob id or a sha256 (one)")
        heads = self.heads()
        if target is not None:
            info = self._locate(target, name)[1]
            oid, digest, size = info.oid, info.sha256, info.size
        else:
            oid, digest, size = _purge.find_blob(self.versions, heads, oid=blob, sha256=sha256)
        report = _purge.plan(
            self.versions, heads, oid, digest, size, why=why, replace_with=replace_with
        )
        if not apply:
            return report
        report = _purge.apply(self.versions, heads, report)
        if not self.versions.has(oid):
            return report
        gone = self.expunge([oid])
        return dataclasses.replace(report, expunged=gone.objects, bytes_freed=gone.bytes_freed)


# -- helpers ---------------------------------------------------------------------------------


def pick(version: Version, names: Sequence[str] | None) -> Version:
    """``version`` with only the artifacts ``names`` name (a folder name: every file under it);
    all of them when ``names`` is None. ArtifactNotFoundError for a name that matches none."""
    if names is None:
        return version
    picked: list[ArtifactInfo] = []
    for n in names:
        check_artifact_name(n)
        hit = [a for a in version.artifacts if a.name == n or a.name.startswith(n + "/")]
        if not hit:
            raise ArtifactNotFoundError(
                f"{version.spec}/{version.task}@v{version.version} has no artifact {n!r}"
            )
        picked += [a for a in hit if a not in picked]
    return dataclasses.replace(version, artifacts=tuple(picked))


def _with_aliases(found: list[Version], names: Mapping[str, str]) -> list[Version]:
    """``found`` with each version's aliases (``names``: alias -> commit) filled in."""
    by_commit: dict[str, list[str]] = {}
    for name, commit in sorted(names.items()):
        by_commit.setdefault(commit, []).append(name)
    return [
        dataclasses.replace(v, aliases=tuple(by_commit[v.commit])) if v.commit in by_commit else v
        for v in found
    ]


def _known_size(item: ingest.Input) -> int:
    """The size of an input that is not a stream, as the put was given it."""
    if item.data is not None:
        return len(item.data)
    assert item.stat is not None
    return item.stat.st_size


@dataclasses.dataclass
class _Staged:
    """A put checked and ready to read: its task, inputs and recorded fields."""

    spec: str
    task: str
    inputs: list[ingest.Input]
    masker: Masker | None
    run_id: str | None
    message: str | None
    metadata: dict[str, Any]
    replace: bool
    force: bool
    stream_check: StreamCheck | None = None
    changes: dict[str, ArtifactEntry] = dataclasses.field(default_factory=dict)

    @property
    def summary(self) -> str:
        n = len(self.changes)
        return f"put {n} artifact{'s' if n != 1 else ''}"

    def apply(self, base: Manifest | None) -> dict[str, ArtifactEntry]:
        """The artifact set of the new version, made on top of ``base`` (the head's manifest)."""
        result = {} if (self.replace or base is None) else dict(base.artifacts)
        for name, entry in self.changes.items():
            old = result.get(name)
            result[name] = old if old is not None and old.same_content(entry) else entry
        check_layout(list(result))
        return result


def _items(
    items: Iterable[tuple[str, Mapping[str, Source | Artifact]]], keywords: dict[str, Any]
) -> Iterator[tuple[str, Mapping[str, Source | Artifact], dict[str, Any]]]:
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise UsageError(f"put_many takes (address, artifacts) pairs, not {item!r:.60}")
        yield item[0], item[1], keywords


def _raise_first(results: Sequence[Version | GitstoreError]) -> list[Version]:
    """The versions, or the first error among them (raised after the rest landed)."""
    out = []
    for r in results:
        if isinstance(r, GitstoreError):
            raise r
        out.append(r)
    return out


class PendingPut:
    """A put gathered in a :meth:`Store.batch`: ``version`` is its version once the batch has
    landed (at the end of the ``with`` block)."""

    def __init__(self, address: str, results: list[Version | GitstoreError | None], at: int):
        self.address = address
        self._results = results
        self._at = at

    @property
    def done(self) -> bool:
        """Has the batch landed (or failed) this put?"""
        return self._results[self._at] is not None

    @property
    def version(self) -> Version:
        """The version this put made (or its unchanged head, ``created=False``).

        Raises:
          UsageError: the batch has not landed yet (the ``with`` block is still running, or it
            ended with an error and nothing landed).
          The put's own error, if landing it failed.
        """
        result = self._results[self._at]
        if result is None:
            raise UsageError(
                f"the put to {self.address} has not landed: a batch lands when its with-block ends"
            )
        if isinstance(result, GitstoreError):
            raise result
        return result


class PutBatch:
    """Puts gathered to land together; made by :meth:`Store.batch`, used as a context manager.

    :meth:`put` checks a put and reads its bytes at once; everything lands when the block
    ends, as one :meth:`Store.put_many`.
    """

    def __init__(
        self,
        stage: Callable[[str, Mapping[str, Source | Artifact], dict[str, Any]], Any],
        land: Callable[[list[Any]], Sequence[Version | GitstoreError]],
        pin: contextlib.AbstractContextManager[None] | None = None,
    ) -> None:
        # stage: check one put and read its bytes; land: land everything staged, in order.
        self._stage = stage
        self._land = land
        self._staged: list[Any] = []
        self._results: list[Version | GitstoreError | None] = []
        self._open = False
        # Held from the block's start to its end (see Store.batch); None: nothing to pin.
        self._pin = pin or contextlib.nullcontext()

    def __enter__(self) -> PutBatch:
        self._pin.__enter__()
        self._open = True
        return self

    def put(
        self,
        address: str,
        artifacts: Mapping[str, Source | Artifact],
        *,
        run_id: str | None = None,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        replace: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        mask_secrets: bool | Masker = False,
        follow_symlinks: bool = False,
    ) -> PendingPut:
        """Gather a put (the arguments of :meth:`Store.put`); it lands when the block ends.

        Raises what :meth:`Store.put` raises for bad input, at once; nothing of this put is
        gathered then, and the rest of the batch is unaffected.
        """
        if not self._open:
            raise UsageError("use a batch as a with-block: with store.batch() as b: b.put(...)")
        keywords = {
            "run_id": run_id,
            "message": message,
            "metadata": metadata,
            "content_type": content_type,
            "tags": tags,
            "replace": replace,
            "force": force,
            "progress": progress,
            "mask_secrets": mask_secrets,
            "follow_symlinks": follow_symlinks,
        }
        self._staged.append(self._stage(address, artifacts, keywords))
        self._results.append(None)
        return PendingPut(address, self._results, len(self._results) - 1)

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._open = False
        try:
            if kind is not None or not self._staged:
                return  # nothing lands: the block failed, or gathered nothing
            results = self._land(self._staged)
        finally:
            self._pin.__exit__(None, None, None)
        self._results[:] = results
        _raise_first(results)


def _valid_component(text: str) -> bool:
    return _names.is_component(text)


# Stores at a URL rather than a path: the scheme names the module whose ``open_url`` opens it.
# Named, not imported: the HTTP client is a Store itself (it imports this module), and is loaded
# only when a URL asks for it, so that neither a local store nor ``import gitstore`` pays for it.
_URL_OPENERS = {"http": "gitstore.client", "https": "gitstore.client"}


def _open_url(url: str, token: str | None) -> Store:
    scheme = url.split("://", 1)[0].lower()
    module = _URL_OPENERS.get(scheme)
    if module is None:
        raise UsageError(
            f"{url}: a store opens at a path or at an http:// or https:// URL, not {scheme}://"
        )
    opened: Store = importlib.import_module(module).open_url(url, token=token)
    return opened
