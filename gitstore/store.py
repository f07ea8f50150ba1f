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
import errno
import fcntl
import io
import json
import mimetypes
import os
import random
import stat
import tempfile
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, cast

import msgspec
from dulwich.config import ConfigFile
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.repo import Repo

from gitstore import gc as _gc
from gitstore import names as _names
from gitstore.errors import (
    ArtifactNotFoundError,
    ConflictError,
    GitstoreError,
    InputError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    SecretsFoundError,
    StoreError,
    StoreNotFoundError,
    TaskNotFoundError,
    UsageError,
    VersionNotFoundError,
)
from gitstore.meta import (
    ArtifactEntry,
    Manifest,
    Truncation,
    decode_manifest,
    encode_manifest,
    format_commit_message,
    now_iso,
    parse_trailers,
)
from gitstore.model import (
    Artifact,
    ArtifactInfo,
    Diff,
    GcReport,
    Problem,
    Source,
    SpecSummary,
    TaskHead,
    Version,
)
from gitstore.names import Address, Rev, artifact_uri, check_artifact_name, task_ref
from gitstore.objects import (
    PACK_FLUSH_BYTES,
    SMALL_BLOB,
    BlobInfo,
    BlobReader,
    DiskObjects,
    MemoryObjects,
    ObjectBackend,
    Progress,
    hash_bytes,
)
from gitstore.refs import Busy, DiskRefs, MemoryRefs, RefBackend
from gitstore.secrets import Masker

if TYPE_CHECKING:
    from gitstore.scan import SecretFinding
from gitstore.statcache import StatCache, stat_key
from gitstore.validate import version_problem

__all__ = [
    "Artifact",
    "ArtifactInfo",
    "Diff",
    "GcReport",
    "Problem",
    "Store",
    "Version",
]

REFS_PREFIX = "refs/artifacts/"
MANIFEST_DIR = ".gitstore"
MANIFEST_FILE = "manifest.json"
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_TREE = 0o040000
DEFAULT_IDENTITY = b"gitstore <gitstore@localhost>"

_EXTRA_TYPES = {
    ".log": "text/plain",
    ".txt": "text/plain",
    ".diff": "text/x-diff",
    ".patch": "text/x-diff",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".py": "text/x-python",
}


def guess_type(name: str) -> str:
    """The content type gitstore records for ``name`` when the caller gives none."""
    ext = os.path.splitext(name)[1].lower()
    if ext in _EXTRA_TYPES:
        return _EXTRA_TYPES[ext]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


class _Batch:
    """Small blobs waiting to be packed with the version; flushed early past PACK_FLUSH_BYTES."""

    def __init__(self, objects: ObjectBackend) -> None:
        self.items: list[Blob] = []
        self._held = 0
        self._objects = objects

    def add(self, blob: Blob) -> None:
        self.items.append(blob)
        self._held += blob.raw_length()
        if self._held >= PACK_FLUSH_BYTES:
            self._objects.add_objects(self.items)
            self.items = []
            self._held = 0


@dataclasses.dataclass
class _Pending:
    """An artifact read and stored as a blob, waiting for its version."""

    name: str
    info: BlobInfo
    content_type: str
    tags: dict[str, str]
    executable: bool
    masked_secrets: int = 0
    truncated: Truncation | None = None


@dataclasses.dataclass
class _Input:
    """An artifact to read: validated name, opened source, known size."""

    name: str
    content_type: str | None
    tags: dict[str, str]
    executable: bool | None
    data: bytes | None = None
    path: str | None = None
    stat: os.stat_result | None = None
    stream: IO[bytes] | None = None
    cache_root: str | None = None
    cache_rel: str | None = None
    # None: not masked yet (put masks it when asked); a count: masked already.
    masked_secrets: int | None = None
    truncated: Truncation | None = None


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
        identity: bytes = DEFAULT_IDENTITY,
        cas_timeout: float = 60.0,
    ) -> None:
        self._objects = objects
        self._refs = refs
        self.path = path
        self._identity = identity
        self._cas_timeout = cas_timeout
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._cache_lock = threading.Lock()

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
        * ``gitstore.compression`` (default 1): zlib level for new objects.
        * ``gitstore.casTimeout`` (default 60): seconds a put keeps retrying a contended ref.
        * ``user.name`` / ``user.email``: the identity on version commits.
        """
        if "://" in os.fspath(path):
            from gitstore.client import HttpStore  # here: only a URL needs the HTTP client

            return HttpStore(os.fspath(path), token=token)
        if token is not None:
            raise UsageError("token= is for a served store (http:// or https://), not a path")
        root = os.path.abspath(os.fspath(path))
        gitdir = root
        if os.path.isdir(os.path.join(root, ".git")):
            gitdir = os.path.join(root, ".git")
        if not _is_gitdir(gitdir):
            if not create:
                if os.path.exists(root):
                    raise StoreError(f"{root} is not a gitstore (no bare Git repository there)")
                raise StoreNotFoundError(
                    f"no store at {root} (run 'gitstore init' or put something)"
                )
            if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
                raise StoreError(f"{root} exists and is not an empty folder or a Git repository")
            _init_bare(root)
            gitdir = root
        config = _read_config(gitdir)
        fsync = _config_bool(config, "fsync", True)
        compression = _config_int(config, "compression", 1, 0, 9)
        cas_timeout = float(_config_int(config, "casTimeout", 60, 1, 86400))
        identity = _identity(config)
        objects = DiskObjects(os.path.join(gitdir, "objects"), fsync=fsync, compression=compression)
        return cls(
            objects,
            DiskRefs(gitdir, fsync=fsync),
            path=gitdir,
            identity=identity,
            cas_timeout=cas_timeout,
        )

    @classmethod
    def memory(cls) -> Store:
        """A store that lives in memory only; it behaves like a disk store."""
        return cls(MemoryObjects(), MemoryRefs())

    def close(self) -> None:
        """Release open files (pack handles). The store may not be used afterwards."""
        self._objects.close()

    def __enter__(self) -> Store:
        return self

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
        _prepare(address, artifacts, content_type, tags, metadata, follow_symlinks)

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
        """
        spec, task, inputs = _prepare(
            address, artifacts, content_type, tags, metadata, follow_symlinks
        )
        names = [i.name for i in inputs]
        if not replace:
            # Refuse a clash with the current version's names before writing anything (a clash
            # made by a concurrent writer meanwhile is still caught when the version is built).
            head = self._refs.get(task_ref(spec, task))
            if head is not None:
                _check_layout([*self._manifest(head).artifacts, *names])
        batch = _Batch(self._objects)
        caches: dict[str, StatCache] = {}
        masker = Masker() if mask_secrets is True else (mask_secrets or None)
        if masker is not None:
            message, metadata = _mask_fields(masker, run_id, message, metadata, inputs)
        pending = self._store_blobs(inputs, batch, caches, progress, masker)
        now = now_iso()
        changes = {
            p.name: ArtifactEntry(
                oid=p.info.oid,
                size=p.info.size,
                sha256=p.info.sha256,
                content_type=p.content_type,
                created_at=now,
                executable=p.executable,
                tags=p.tags,
                masked_secrets=p.masked_secrets,
                truncated=p.truncated,
            )
            for p in pending
        }

        def apply(base: Manifest | None) -> dict[str, ArtifactEntry]:
            result = {} if (replace or base is None) else dict(base.artifacts)
            for name, entry in changes.items():
                old = result.get(name)
                result[name] = old if old is not None and old.same_content(entry) else entry
            _check_layout(list(result))
            return result

        version = self._commit(
            spec,
            task,
            apply,
            run_id=run_id,
            message=message,
            metadata=dict(metadata or {}),
            summary=f"put {len(changes)} artifact{'s' if len(changes) != 1 else ''}",
            force=force,
            carry=batch.items,
        )
        # The stat index learns only from puts that landed: a refused put writes nothing.
        for cache in caches.values():
            with contextlib.suppress(OSError):
                cache.save()
        return version

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

        return self._commit(
            addr.spec,
            addr.task,
            apply,
            run_id=run_id,
            message=message,
            metadata={},
            summary=f"rm {', '.join(names)}"[:200],
            force=False,
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
        deadline = time.monotonic() + self._cas_timeout
        attempt = 0
        while True:
            head = self._refs.get(ref)
            if head is None:
                raise TaskNotFoundError(f"no task {addr.spec}/{addr.task}")
            if expect is not None and head != expect:
                raise ConflictError(f"{addr.spec}/{addr.task} has a newer version {head[:12]}")
            try:
                if self._refs.delete(ref, head):
                    return head
            except Busy:
                pass
            attempt = _backoff(attempt, deadline, ref)

    def _commit(
        self,
        spec: str,
        task: str,
        apply: Callable[[Manifest | None], dict[str, ArtifactEntry]],
        *,
        run_id: str | None,
        message: str | None,
        metadata: dict[str, Any],
        summary: str,
        force: bool,
        carry: list[Blob] | None = None,
    ) -> Version:
        """The write protocol's tail: build the version on the current head and CAS the ref.

        ``carry`` holds small blobs not written yet; they go into the same pack as the first
        attempt's version objects, so a typical put writes one pack.
        """
        ref = task_ref(spec, task)
        deadline = time.monotonic() + self._cas_timeout
        attempt = 0
        while True:
            head = self._refs.get(ref)
            base = self._manifest(head) if head else None
            artifacts = apply(base)
            if head and base is not None and not force and _same_set(artifacts, base.artifacts):
                # Nothing changed: every blob is already in the head's tree, so carry is dropped.
                return self._version(head, base, created=False)
            manifest = Manifest(
                spec=spec,
                task=task,
                version=(base.version + 1) if base else 1,
                created_at=now_iso(),
                run_id=run_id,
                message=message,
                metadata=metadata,
                artifacts=artifacts,
            )
            commit = self._write_version(manifest, [head] if head else [], summary, carry or [])
            carry = None
            try:
                if self._refs.cas(ref, head, commit):
                    self._remember(commit, manifest)
                    # The parents are known: no need to read back the commit just written.
                    return self._version(commit, manifest, parents=[head] if head else [])
            except Busy:
                pass
            attempt = _backoff(attempt, deadline, ref)

    def _write_version(
        self,
        manifest: Manifest,
        parents: list[str],
        summary: str,
        carry: list[Blob],
        *,
        identity: bytes | None = None,
        when: int | None = None,
    ) -> str:
        """Write ``carry``, the manifest, trees and commit of a version; return the commit id.

        ``identity`` and ``when`` default to the store's identity and now; merges pass fixed ones
        so that two machines merging the same heads write the same commit.
        """
        objs: list[ShaFile] = list(carry)
        mblob = Blob.from_string(encode_manifest(manifest))
        objs.append(mblob)
        meta_tree = Tree()
        meta_tree.add(MANIFEST_FILE.encode(), MODE_FILE, mblob.id)
        objs.append(meta_tree)
        root = _build_trees(manifest.artifacts, objs)
        root.add(MANIFEST_DIR.encode(), MODE_TREE, meta_tree.id)
        objs.append(root)
        commit = Commit()
        commit.tree = root.id
        commit.parents = [ObjectID(p.encode()) for p in parents]
        commit.author = commit.committer = identity or self._identity
        commit.author_time = commit.commit_time = int(time.time()) if when is None else when
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = format_commit_message(manifest, summary)
        objs.append(commit)
        self._objects.add_objects(objs)
        return commit.id.decode()

    # -- reading input -------------------------------------------------------------------------

    def _store_blobs(
        self,
        inputs: list[_Input],
        small: _Batch,
        caches: dict[str, StatCache],
        progress: Progress | None,
        masker: Masker | None = None,
    ) -> list[_Pending]:
        """Store every input's bytes as a blob; small ones are gathered in ``small``."""
        pending: list[_Pending] = []
        cache_dir = os.path.join(self.path, "gitstore", "statcache") if self.path else None
        for item in inputs:
            if masker is not None and item.masked_secrets is None:
                info = self._store_masked(item, small, masker, progress)
            else:
                info = self._store_one(item, small, caches, cache_dir, progress)
            exe = bool(item.executable) if item.executable is not None else False
            if item.executable is None and item.stat is not None:
                exe = bool(item.stat.st_mode & 0o111)
            pending.append(
                _Pending(
                    item.name,
                    info,
                    item.content_type or guess_type(item.name),
                    item.tags,
                    exe,
                    item.masked_secrets or 0,
                    item.truncated,
                )
            )
        return pending

    def _store_masked(
        self, item: _Input, small: _Batch, masker: Masker, progress: Progress | None
    ) -> BlobInfo:
        """Mask ``item`` into a temp file (bounded memory), then store that; sets the count."""
        tmpdir = os.path.join(self.path, "objects") if self.path else None
        try:
            with contextlib.ExitStack() as stack:
                src: IO[bytes]
                if item.data is not None:
                    src = io.BytesIO(item.data)
                elif item.stream is not None:
                    src = item.stream
                else:
                    assert item.path is not None
                    src = stack.enter_context(open(item.path, "rb"))
                # An unnamed temp file (O_TMPFILE): gc never sees it, a crash leaves nothing.
                out = stack.enter_context(tempfile.TemporaryFile(dir=tmpdir))
                item.masked_secrets = masker.mask_content(src, out)
                size = out.tell()
                out.seek(0)
                if size <= SMALL_BLOB:
                    return self._small_blob(out.read(), small, progress)
                return self._objects.add_blob_stream(out, size, item.name, progress)
        except OSError as e:
            raise InputError(f"{item.path or item.name}: {e.strerror or e}") from None

    def _store_one(
        self,
        item: _Input,
        small: _Batch,
        caches: dict[str, StatCache],
        cache_dir: str | None,
        progress: Progress | None,
    ) -> BlobInfo:
        if item.data is not None:
            return self._small_blob(item.data, small, progress)
        if item.stream is not None:
            return self._store_stream(item.name, item.stream, small, progress)
        assert item.path is not None and item.stat is not None
        cache = None
        if cache_dir is not None and item.cache_root is not None and item.cache_rel is not None:
            cache = caches.get(item.cache_root)
            if cache is None:
                cache = caches[item.cache_root] = StatCache(cache_dir, item.cache_root)
            hit = cache.lookup(item.cache_rel, item.stat)
            if hit is not None and self._objects.has(hit[0]):
                if progress is not None:
                    progress(item.stat.st_size)
                return BlobInfo(hit[0], hit[1], item.stat.st_size)
        try:
            with open(item.path, "rb") as f:
                st = os.fstat(f.fileno())
                if item.stat.st_size <= SMALL_BLOB:
                    data = f.read(item.stat.st_size + 1)
                    if len(data) != item.stat.st_size:
                        raise InputError(f"{item.path}: changed while it was being stored")
                    info = self._small_blob(data, small, progress)
                else:
                    info = self._objects.add_blob_stream(f, st.st_size, item.path, progress)
        except OSError as e:
            raise InputError(f"{item.path}: {e.strerror}") from None
        if cache is not None and item.cache_rel is not None:
            with contextlib.suppress(OSError):
                if stat_key(os.stat(item.path)) == stat_key(item.stat):
                    cache.record(item.cache_rel, item.stat, info.oid, info.sha256)
        return info

    def _small_blob(self, data: bytes, small: _Batch, progress: Progress | None) -> BlobInfo:
        if len(data) > SMALL_BLOB:
            info = self._objects.add_blob(data)
        else:
            info = hash_bytes(data)
            small.add(Blob.from_string(data))
        if progress is not None:
            progress(len(data))
        return info

    def _store_stream(
        self, name: str, stream: IO[bytes], small: _Batch, progress: Progress | None
    ) -> BlobInfo:
        """A stream of unknown size: small ones in memory, larger ones spooled to a temp file."""
        head = _read_upto(stream, SMALL_BLOB + 1)
        if len(head) <= SMALL_BLOB:
            return self._small_blob(head, small, progress)
        if self.path is None:
            rest = _read_upto(stream, -1)
            return self._small_blob(head + rest, small, progress)
        spool = os.path.join(self.path, "objects", f"tmp_spool_{os.getpid()}_{os.urandom(6).hex()}")
        fd = os.open(spool, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        # Held while this writer lives, so gc never takes a slow spool for an abandoned one.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(fd, "w+b") as f:
                f.write(head)
                while chunk := stream.read(1 << 20):
                    f.write(chunk)
                size = f.tell()
                f.seek(0)
                return self._objects.add_blob_stream(f, size, name, progress)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spool)

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
        out = {}
        for ref, value in self._refs.items(prefix).items():
            parts = ref[len(REFS_PREFIX) :].split("/")
            if len(parts) == 2 and all(_valid_component(p) for p in parts):
                out["/".join(parts)] = value
        return dict(sorted(out.items()))

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
        return [
            TaskHead(spec, key.split("/", 1)[1], commit)
            for key, commit in self.heads_in(_names.check_component(spec, "spec")).items()
        ]

    def show(self, address: str) -> Version:
        """The version ``SPEC/TASK[@REV]`` with its metadata and artifacts."""
        addr = _names.parse_address(address, need_task=True)
        commit = self._resolve(addr)
        return self._version(commit, self._manifest(commit))

    def log(self, address: str, *, limit: int | None = None) -> list[Version]:
        """Versions of ``SPEC/TASK`` newest first: the first-parent chain, then merged-in sides.

        Every version reachable from the head is listed once, ordered by version number then
        creation time (newest first).
        """
        addr = _names.parse_address(address, need_task=True)
        found = [
            self._version(c, self._manifest(c))
            for c in walk_commits([self._resolve(addr)], self._parents)
        ]
        found.sort(key=lambda v: (v.version, v.created_at, v.commit), reverse=True)
        return found[:limit] if limit is not None else found

    def iter_versions(self, address: str) -> Iterator[Version]:
        """First-parent chain of ``SPEC/TASK[@REV]``, newest first, read lazily."""
        addr = _names.parse_address(address, need_task=True)
        commit: str | None = self._resolve(addr)
        while commit:
            m = self._manifest(commit)
            v = self._version(commit, m)
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
        commit = self._resolve(addr)
        return self._version(commit, self._manifest(commit))

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
    ) -> list[str]:
        """Write every artifact of ``SPEC/TASK[@REV]`` under folder ``dest``; return the paths.

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
        version = self.show(address)
        root = os.path.abspath(os.fspath(dest))
        if os.path.exists(root) and not os.path.isdir(root):
            raise UsageError(f"{root} exists and is not a folder")
        written = []
        for art, target in _export_plan(version, root):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.gitstore-tmp-{os.getpid()}-{os.urandom(4).hex()}"
            try:
                # O_EXCL | O_NOFOLLOW: never write through something already at the temp name.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with open(fd, "wb") as out, self._objects.open_blob(art.oid) as src:
                    for chunk in src.iter_chunks():
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
                os.chmod(tmp, 0o755 if art.executable else 0o644)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            written.append(target)
        return written

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
        commit = self._resolve(addr)
        version = self._version(commit, self._manifest(commit))
        return version, version.artifact(name)

    # -- verify --------------------------------------------------------------------------------

    def verify(self, scope: str | None = None) -> list[Problem]:
        """Recompute the sha256 of every artifact reachable from the refs (or from one spec or
        task) and check every object on the way; return every problem found (empty: all good).
        """
        heads = self.heads_in(scope)
        problems: list[Problem] = []
        checked: dict[str, str | None] = {}  # oid -> problem text (None: good)
        for key, head in heads.items():
            spec, task = key.split("/")
            # Parents are learnt while checking each commit; a damaged one ends its branch.
            parents: defaultdict[str, list[str]] = defaultdict(list)
            for commit in walk_commits([head], parents.__getitem__):
                # The rules every version that arrives must pass (names, tree against manifest,
                # modes, numbers): a store written by another tool is not trusted either.
                problem = version_problem(self._objects, spec, task, commit, blobs=False)
                if problem is not None:
                    problems.append(Problem(spec, task, commit, None, problem))
                try:
                    obj = self._commit_obj(commit)
                    parents[commit] = [p.decode() for p in obj.parents]
                    if problem is not None:
                        continue
                    manifest = self._manifest(commit)
                except GitstoreError as e:
                    if problem is None:
                        problems.append(Problem(spec, task, commit, None, str(e)))
                    continue
                for name, entry in manifest.artifacts.items():
                    if entry.oid not in checked:
                        checked[entry.oid] = self._check_blob(entry)
                    if checked[entry.oid] is not None:
                        problems.append(Problem(spec, task, commit, name, str(checked[entry.oid])))
        return problems

    def _check_blob(self, entry: ArtifactEntry) -> str | None:
        import hashlib

        try:
            with self._objects.open_blob(entry.oid) as f:
                sha1 = hashlib.sha1(b"blob %d\0" % f.size)
                sha256 = hashlib.sha256()
                for chunk in f.iter_chunks():
                    sha1.update(chunk)
                    sha256.update(chunk)
                size = f.size
        except IntegrityError as e:
            return str(e)
        if sha1.hexdigest() != entry.oid:
            return f"object {entry.oid} is corrupt (its bytes hash to {sha1.hexdigest()})"
        if sha256.hexdigest() != entry.sha256:
            return (
                f"sha256 mismatch: manifest says {entry.sha256}, bytes hash to {sha256.hexdigest()}"
            )
        if size != entry.size:
            return f"size mismatch: manifest says {entry.size}, blob has {size}"
        return None

    def scan(
        self, scope: str | None = None, *, masker: Masker | None = None
    ) -> list[SecretFinding]:
        """Secret-shaped strings stored in any version of ``scope`` (None, SPEC or SPEC/TASK).

        Every blob in each version's tree and every field (message, run id, metadata, tags ...)
        is read; each finding names spec, task, commit and where (artifact and line, or field),
        never the secret; see :mod:`gitstore.scan`. ``masker`` says what counts (default: token
        shapes only).
        """
        from gitstore.scan import scan  # scan reads through this class's public calls

        return list(scan(self, scope, masker=masker))

    # -- maintenance -------------------------------------------------------------------------

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

    # -- internals -----------------------------------------------------------------------------

    def _resolve(self, addr: Address) -> str:
        """The commit id that ``addr`` names; raises TaskNotFound/VersionNotFound errors."""
        assert addr.task is not None
        where = f"{addr.spec}/{addr.task}"
        rev = addr.rev
        if rev.kind == "commit" and isinstance(rev.value, str) and len(rev.value) == 40:
            # A pinned commit resolves for as long as the object exists, even if the ref is gone.
            try:
                obj = self._objects.get(rev.value)
            except IntegrityError:
                raise VersionNotFoundError(f"{where} has no version {rev.value}") from None
            if isinstance(obj, Commit):
                m = self._manifest(rev.value)
                if (m.spec, m.task) == (addr.spec, addr.task):
                    return rev.value
            raise VersionNotFoundError(f"{where} has no version {rev.value}")
        head = self._refs.get(task_ref(addr.spec, addr.task))
        if head is None:
            raise TaskNotFoundError(f"no task {where}")
        if rev.kind == "latest":
            return head
        if rev.kind == "back":
            commit = head
            assert isinstance(rev.value, int)
            for _ in range(rev.value):
                parents = self._parents(commit)
                if not parents:
                    raise VersionNotFoundError(f"{where} has no version {rev} (history is shorter)")
                commit = parents[0]
            return commit
        if rev.kind == "number":
            commit_or_none: str | None = head
            while commit_or_none:
                number = self._number(commit_or_none)
                if number == rev.value:
                    return commit_or_none
                if number < int(rev.value or 0):
                    break
                parents = self._parents(commit_or_none)
                commit_or_none = parents[0] if parents else None
            raise VersionNotFoundError(f"{where} has no version {rev}")
        prefix = str(rev.value)
        matches = [c for c in walk_commits([head], self._parents) if c.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidNameError(f"{where}@{prefix} is ambiguous ({len(matches)} versions match)")
        raise VersionNotFoundError(f"{where} has no version {prefix}")

    def _commit_obj(self, commit: str) -> Commit:
        obj = self._objects.get(commit)
        if not isinstance(obj, Commit):
            raise IntegrityError(f"object {commit} is not a commit")
        return obj

    def _parents(self, commit: str) -> list[str]:
        return [p.decode() for p in self._commit_obj(commit).parents]

    def _number(self, commit: str) -> int:
        cached = self._cached(commit)
        if cached is not None:
            return cached.version
        trailers = parse_trailers(self._commit_obj(commit).message)
        if trailers.get("Version", "").isdigit():
            return int(trailers["Version"])
        return self._manifest(commit).version

    def _cached(self, commit: str) -> Manifest | None:
        with self._cache_lock:
            m = self._manifests.get(commit)
            if m is not None:
                self._manifests.move_to_end(commit)
            return m

    def _remember(self, commit: str, manifest: Manifest) -> None:
        with self._cache_lock:
            self._manifests[commit] = manifest
            if len(self._manifests) > 4096:
                self._manifests.popitem(last=False)

    def _manifest(self, commit: str) -> Manifest:
        """The manifest of version ``commit`` (cached: a commit never changes)."""
        cached = self._cached(commit)
        if cached is not None:
            return cached
        c = self._commit_obj(commit)
        tree = self._objects.get(c.tree.decode())
        if not isinstance(tree, Tree):
            raise IntegrityError(f"version {commit}: its tree is not a tree")
        try:
            _, meta_id = tree[MANIFEST_DIR.encode()]
            meta = self._objects.get(meta_id.decode())
            assert isinstance(meta, Tree)
            _, blob_id = meta[MANIFEST_FILE.encode()]
        except (KeyError, AssertionError):
            raise IntegrityError(
                f"commit {commit} is not a gitstore version (no manifest)"
            ) from None
        blob = self._objects.get(blob_id.decode())
        try:
            manifest = decode_manifest(blob.as_raw_string())
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise IntegrityError(f"version {commit}: damaged manifest ({e})") from None
        self._remember(commit, manifest)
        return manifest

    def _version(
        self,
        commit: str,
        m: Manifest,
        *,
        created: bool = True,
        parents: Sequence[str] | None = None,
    ) -> Version:
        if parents is None:
            parents = self._parents(commit)
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
        )


def _prepare(
    address: str,
    artifacts: Mapping[str, Source | Artifact],
    content_type: str | None,
    tags: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
    follow_symlinks: bool = False,
) -> tuple[str, str, list[_Input]]:
    """Every check of a put that needs no store: address, names, inputs, metadata."""
    addr = _names.parse_address(address, need_task=True, allow_rev=False)
    assert addr.task is not None
    if not isinstance(artifacts, Mapping) or not artifacts:
        raise UsageError("put needs at least one artifact")
    inputs = _collect(artifacts, content_type, dict(tags or {}), follow_symlinks)
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InvalidNameError(f"artifact {twice[0]!r} is given twice in one put")
    _check_layout(names)
    if metadata is not None:
        try:
            msgspec.json.encode(dict(metadata))
        except (TypeError, msgspec.EncodeError) as e:
            raise UsageError(f"metadata is not JSON-able: {e}") from None
    return addr.spec, addr.task, inputs


def _collect(
    artifacts: Mapping[str, Source | Artifact],
    default_type: str | None,
    default_tags: dict[str, str],
    follow_symlinks: bool = False,
) -> list[_Input]:
    """Check every name and open every source before anything is written."""
    out: list[_Input] = []
    for name, value in artifacts.items():
        spec = value if isinstance(value, Artifact) else Artifact(value)
        ctype = spec.content_type or default_type
        tags = {**default_tags, **dict(spec.tags or {})}
        for k, v in tags.items():
            if not isinstance(k, str) or not isinstance(v, str) or not k:
                raise UsageError(
                    f"tag {k!r}={v!r}: tags are non-empty string keys and string values"
                )
        src = spec.source
        if isinstance(src, os.PathLike):
            found = _collect_path(
                name, os.fspath(src), ctype, tags, spec.executable, follow_symlinks
            )
            out.extend(_with_facts(spec, found))
            continue
        check_artifact_name(name)
        if isinstance(src, str):
            out.append(
                _Input(name, ctype or _text_type(name), tags, spec.executable, data=src.encode())
            )
        elif isinstance(src, (bytes, bytearray, memoryview)):
            out.append(_Input(name, ctype, tags, spec.executable, data=bytes(src)))
        elif hasattr(src, "read"):
            out.append(_Input(name, ctype, tags, spec.executable, stream=src))
        else:
            raise UsageError(
                f"artifact {name!r}: cannot store a {type(src).__name__} "
                "(give bytes, str, a pathlib.Path or a binary stream)"
            )
        _with_facts(spec, out[-1:])
    return out


def _with_facts(spec: Artifact, inputs: list[_Input]) -> list[_Input]:
    """Carry what the caller says was done to the bytes (masked, cut) onto its inputs."""
    for item in inputs:
        item.masked_secrets = spec.masked_secrets
        item.truncated = spec.truncated
    return inputs


def _collect_path(
    name: str,
    path: str,
    ctype: str | None,
    tags: dict[str, str],
    executable: bool | None,
    follow_symlinks: bool = False,
) -> list[_Input]:
    """The file at ``path``, or every file under the folder at ``path``, as inputs.

    ``path`` itself is followed if it is a symbolic link: the caller named it. Inside a folder
    nothing outside it is read: a symbolic link there is refused, unless ``follow_symlinks``,
    which follows links to files; links to folders are refused either way (they can loop).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or folder") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        check_artifact_name(name)
        _check_readable(path)
        folder, base = os.path.split(os.path.abspath(path))
        return [
            _Input(
                name,
                ctype,
                tags,
                executable,
                path=path,
                stat=st,
                cache_root=folder,
                cache_rel=base,
            )
        ]
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: not a regular file or folder")
    prefix = "" if name in (".", "") else check_artifact_name(name) + "/"
    found: list[_Input] = []
    root = os.path.abspath(path)

    def onerror(e: OSError) -> None:
        raise InputError(f"{e.filename}: {e.strerror}")

    # followlinks=False: os.walk lists a link to a folder among the folders without entering it.
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames.sort()
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                raise InputError(
                    f"{full}: a symbolic link to a folder, which put does not follow "
                    "(put its target folder instead)"
                )
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            fst = _stat_inside(full, follow_symlinks)
            if not stat.S_ISREG(fst.st_mode):
                raise InputError(f"{full}: not a regular file")
            _check_readable(full)
            art = check_artifact_name(prefix + rel)
            exe = executable if executable is not None else bool(fst.st_mode & 0o111)
            found.append(
                _Input(art, ctype, tags, exe, path=full, stat=fst, cache_root=root, cache_rel=rel)
            )
    if not found:
        raise InputError(f"{path}: the folder holds no files")
    return found


def _stat_inside(full: str, follow_symlinks: bool) -> os.stat_result:
    """The stat of an entry of a folder being put; a symbolic link only when asked to follow.

    Refusing links by default keeps a folder put from reading outside the folder it was given
    (``leak -> ~/.ssh/id_rsa`` would otherwise store the key).
    """
    try:
        st = os.lstat(full)
    except OSError as e:
        raise InputError(f"{full}: {e.strerror}") from None
    if not stat.S_ISLNK(st.st_mode):
        return st
    if not follow_symlinks:
        raise InputError(
            f"{full}: a symbolic link, which put does not follow inside a folder "
            "(--follow-symlinks, or follow_symlinks=True, follows links to files)"
        )
    try:
        return os.stat(full)
    except FileNotFoundError:
        raise InputError(f"{full}: a symbolic link to nothing (its target is missing)") from None
    except OSError as e:
        raise InputError(f"{full}: a symbolic link that cannot be followed ({e.strerror})") from e


# -- helpers ---------------------------------------------------------------------------------


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


def _backoff(attempt: int, deadline: float, ref: str) -> int:
    """Sleep before the next compare-and-swap attempt (exponential, jittered, capped)."""
    if time.monotonic() > deadline:
        raise ConflictError(
            f"{ref}: gave up after {attempt + 1} attempts (other writers kept winning)"
        )
    delay = min(0.05, 0.0005 * (2 ** min(attempt, 7)))
    time.sleep(random.uniform(0, delay))
    return attempt + 1


def _same_set(a: Mapping[str, ArtifactEntry], b: Mapping[str, ArtifactEntry]) -> bool:
    return a.keys() == b.keys() and all(a[k].same_content(b[k]) for k in a)


def _check_layout(names: Iterable[str]) -> None:
    """Refuse a set where one name is both a file and a folder (``a`` and ``a/b``)."""
    files = set(names)
    for n in files:
        parts = n.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                raise InvalidNameError(
                    f"artifact {'/'.join(parts[:i])!r} is a file, so {n!r} cannot be under it"
                )


def _export_plan(version: Version, root: str) -> list[tuple[ArtifactInfo, str]]:
    """Each artifact of ``version`` with the path it is exported to under ``root``.

    Everything is checked before the first byte is written, so a refused export leaves ``root``
    and its parent as they were. A name must pass the put rules (no ``..``, no leading ``/``, no
    ``.git``, no control character ...) and the set must be a layout (no file with names under
    it). No folder or file on the way to a target may be a symbolic link already in ``root``:
    following one could land anywhere (``a -> /etc`` would put ``a/passwd`` in /etc), and
    replacing one is a decision the user did not ask for, so the export is refused.
    """
    where = version.address
    names = [a.name for a in version.artifacts]
    try:
        for name in names:
            check_artifact_name(name)
        _check_layout(names)
    except InvalidNameError as e:
        raise InvalidNameError(f"{where}: refusing to export: {e}") from None
    plan = []
    for art in version.artifacts:
        parts = art.name.split("/")
        target = os.path.join(root, *parts)
        for i in range(len(parts)):
            path = os.path.join(root, *parts[: i + 1])
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                break  # nothing further down exists either: export creates it
            if stat.S_ISLNK(st.st_mode):
                raise InvalidNameError(
                    f"{where}: refusing to export {art.name!r}: {path} is a symbolic link "
                    "(export never writes through or over one)"
                )
            # Caught here rather than half-way through the writes: nothing written yet.
            if path == target and stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "a folder is where an artifact goes", path)
            if path != target and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder, artifacts go in it", path)
        plan.append((art, target))
    return plan


def _build_trees(artifacts: Mapping[str, ArtifactEntry], out: list[ShaFile]) -> Tree:
    """Nested trees for ``artifacts``; every tree below the root is appended to ``out``."""
    nested: dict[str, Any] = {}
    for name, entry in artifacts.items():
        node = nested
        parts = name.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = entry

    def build(node: dict[str, Any]) -> Tree:
        tree = Tree()
        for key, value in node.items():
            if isinstance(value, dict):
                sub = build(value)
                out.append(sub)
                tree.add(key.encode(), MODE_TREE, sub.id)
            else:
                tree.add(
                    key.encode(), MODE_EXEC if value.executable else MODE_FILE, value.oid.encode()
                )
        return tree

    return build(nested)


def _text_type(name: str) -> str:
    """The type of a str value: guessed from the name, and text where the name says nothing."""
    guessed = guess_type(name)
    return "text/plain" if guessed == "application/octet-stream" else guessed


def _valid_component(text: str) -> bool:
    try:
        _names.check_component(text)
    except InvalidNameError:
        return False
    return True


def _check_readable(path: str) -> None:
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def _mask_fields(
    masker: Masker,
    run_id: str | None,
    message: str | None,
    metadata: Mapping[str, Any] | None,
    inputs: list[_Input],
) -> tuple[str | None, Mapping[str, Any] | None]:
    """Mask what a put records besides bytes, as a scan reads it (message, metadata, tags, content
    types; see :func:`gitstore.secrets.field_texts`); return the masked message and metadata
    (tags and content types are masked on ``inputs`` in place).

    A run id is not masked but refused: it names the run (``find --run``, ``rm-run``), and
    masked run ids would all read ``***MASKED***``, one run for ``rm-run`` to delete.

    Raises:
      SecretsFoundError: ``run_id`` holds a secret-shaped string.
    """
    found = masker.scan_value(run_id, "run_id") if run_id is not None else []
    if found:
        raise SecretsFoundError(
            f"the run id holds a secret-shaped string ({found[0][1].kind}): a run id names the "
            "run, so it is refused rather than masked; give one without it"
        )
    if message is not None:
        message = cast(str, masker.mask_value(message, "message")[0])
    if metadata is not None:
        metadata = cast(dict[str, Any], masker.mask_value(metadata)[0])
    for item in inputs:
        item.tags = cast(dict[str, str], masker.mask_value(item.tags)[0])
        if item.content_type is not None:
            item.content_type = cast(str, masker.mask_value(item.content_type, "content_type")[0])
    return message, metadata


def _read_upto(stream: IO[bytes], n: int) -> bytes:
    parts = []
    left = n
    while left != 0:
        chunk = stream.read(left if left > 0 else 1 << 20)
        if not chunk:
            break
        if isinstance(chunk, str):
            raise UsageError("streams must be binary (open files with 'rb')")
        parts.append(chunk)
        if left > 0:
            left -= len(chunk)
    return b"".join(parts)


def _is_gitdir(path: str) -> bool:
    return (
        os.path.isfile(os.path.join(path, "HEAD"))
        and os.path.isdir(os.path.join(path, "objects"))
        and os.path.isdir(os.path.join(path, "refs"))
    )


def _init_bare(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        repo = Repo.init_bare(path)
        repo.close()
        config = ConfigFile.from_path(os.path.join(path, "config"))
        config.set((b"gitstore",), b"format", b"1")
        # A store is written by many processes; git's own auto-gc must not repack under them.
        config.set((b"gc",), b"auto", b"0")
        config.set((b"core",), b"logAllRefUpdates", b"false")
        config.write_to_path()
    except OSError as e:
        raise StoreError(f"cannot create a store at {path}: {e.strerror or e}") from None


def _read_config(gitdir: str) -> ConfigFile:
    try:
        return ConfigFile.from_path(os.path.join(gitdir, "config"))
    except FileNotFoundError:
        return ConfigFile()
    except (OSError, ValueError) as e:
        raise StoreError(f"{gitdir}/config: cannot be read ({e})") from None


def _config_bool(config: ConfigFile, key: str, default: bool) -> bool:
    try:
        raw = config.get((b"gitstore",), key.encode())
    except KeyError:
        return default
    value = raw.decode().strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise StoreError(f"gitstore.{key} = {value!r} is not a boolean")


def _config_int(config: ConfigFile, key: str, default: int, lo: int, hi: int) -> int:
    try:
        raw = config.get((b"gitstore",), key.encode())
    except KeyError:
        return default
    try:
        value = int(raw.decode().strip())
    except ValueError:
        raise StoreError(f"gitstore.{key} = {raw.decode()!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise StoreError(f"gitstore.{key} = {value} is outside {lo}..{hi}")
    return value


def _identity(config: ConfigFile) -> bytes:
    try:
        name = config.get((b"user",), b"name")
        email = config.get((b"user",), b"email")
    except KeyError:
        return DEFAULT_IDENTITY
    return name + b" <" + email + b">"
