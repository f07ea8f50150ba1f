"""put's input side: every value checked and opened before anything is written, then read into
blobs.

:func:`prepare` is every check of a put that needs no store: the address, each name, each
source (bytes, str, a file, a folder walked in name order, a stream), tags and metadata, so a bad
put is refused before a byte is written. :class:`Ingest` then stores each input as a blob: small
ones (up to ``SMALL_BLOB``) are gathered in a :class:`Batch` that goes into the version's own
pack; large ones stream into loose objects; a stream of unknown size is spooled to a temp file
inside ``objects/`` (flocked, so gc leaves a slow one alone); with a masker the bytes are masked
on the way into an unnamed temp file. A file whose stat data the folder's stat index knows
(:mod:`gitstore.statcache`) is not read again while its blob is still in the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import io
import mimetypes
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any, BinaryIO, cast

import msgspec

from gitstore import names as _names
from gitstore.backend.objects import (
    PACK_FLUSH_BYTES,
    SMALL_BLOB,
    BlobInfo,
    ObjectBackend,
    Progress,
    hash_bytes,
)
from gitstore.backend.trees import add_blobs
from gitstore.errors import InputError, InvalidNameError, SecretsFoundError, UsageError
from gitstore.meta import ArtifactEntry, Truncation
from gitstore.model import Artifact, Source
from gitstore.names import check_artifact_name, check_layout
from gitstore.secrets import Masker
from gitstore.statcache import StatCache, stat_key

__all__ = ["Batch", "Ingest", "Input", "Pending", "guess_type", "mask_fields", "prepare"]

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


class Batch:
    """Small blobs waiting to be packed with the version; flushed early past PACK_FLUSH_BYTES."""

    def __init__(self, objects: ObjectBackend) -> None:
        self.items: list[bytes] = []
        self._held = 0
        self._objects = objects

    def add(self, blob: bytes) -> None:
        """Gather ``blob``; once PACK_FLUSH_BYTES have gathered they are written as one pack."""
        self.items.append(blob)
        self._held += len(blob)
        if self._held >= PACK_FLUSH_BYTES:
            add_blobs(self._objects, self.items)
            self.items = []
            self._held = 0


@dataclasses.dataclass
class Pending:
    """An artifact read and stored as a blob, waiting for its version."""

    name: str
    info: BlobInfo
    content_type: str
    tags: dict[str, str]
    executable: bool
    masked_secrets: int = 0
    truncated: Truncation | None = None

    def entry(self, created_at: str) -> ArtifactEntry:
        """The manifest entry of this artifact, created at ``created_at``."""
        return ArtifactEntry(
            oid=self.info.oid,
            size=self.info.size,
            sha256=self.info.sha256,
            content_type=self.content_type,
            created_at=created_at,
            executable=self.executable,
            tags=self.tags,
            masked_secrets=self.masked_secrets,
            truncated=self.truncated,
        )


@dataclasses.dataclass
class Input:
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
    # A file found inside a folder that was not a symbolic link: it must not become one before
    # it is read (another process swapping in ``leak -> ~/.ssh/id_rsa`` between walk and read).
    nofollow: bool = False


class Ingest:
    """Reads a put's inputs into blobs of one store; one per put.

    Args:
      objects: where the blobs go.
      path: the store's Git directory (temp files and the stat index live there); None for a
        memory store, which spools nothing and keeps no stat index.
      fsync: whether the stat index is fsync'd when saved (the store's ``gitstore.fsync``).

    Attributes:
      batch: the small blobs not written yet; they go into the version's pack.
      caches: the stat index of each folder read, saved by :meth:`save_caches`.
    """

    def __init__(
        self,
        objects: ObjectBackend,
        path: str | None,
        *,
        fsync: bool,
        stream_check: Callable[[str, int, bool], None] | None = None,
    ) -> None:
        self._objects = objects
        self._path = path
        self._fsync = fsync
        # Called with (name, bytes read so far, whether that is all) as a stream is read, before
        # any of it is stored: the store's quotas (see gitstore.quota) raise from it.
        self._stream_check = stream_check
        self.batch = Batch(objects)
        self.caches: dict[str, StatCache] = {}

    def save_caches(self) -> None:
        """Save what the stat indexes learnt; call once the put landed (a refused put writes
        nothing). A cache that cannot be written only makes the next put slower."""
        for cache in self.caches.values():
            with contextlib.suppress(OSError):
                cache.save()

    def store(
        self, inputs: list[Input], progress: Progress | None, masker: Masker | None = None
    ) -> list[Pending]:
        """Store every input's bytes as a blob (masked first with ``masker``, unless an input
        says it was masked already); small blobs gather in :attr:`batch`."""
        pending: list[Pending] = []
        for item in inputs:
            if masker is not None and item.masked_secrets is None:
                info = self._store_masked(item, masker, progress)
            else:
                info = self._store_one(item, progress)
            exe = bool(item.executable) if item.executable is not None else False
            if item.executable is None and item.stat is not None:
                exe = bool(item.stat.st_mode & 0o111)
            pending.append(
                Pending(
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

    def _store_masked(self, item: Input, masker: Masker, progress: Progress | None) -> BlobInfo:
        """Mask ``item`` into a temp file (bounded memory), then store that; sets the count."""
        tmpdir = os.path.join(self._path, "objects") if self._path else None
        try:
            with contextlib.ExitStack() as stack:
                src: IO[bytes]
                if item.data is not None:
                    src = io.BytesIO(item.data)
                elif item.stream is not None:
                    src = item.stream
                else:
                    assert item.path is not None
                    src = stack.enter_context(_open_input(item))
                # An unnamed temp file (O_TMPFILE): gc never sees it, a crash leaves nothing.
                out = stack.enter_context(tempfile.TemporaryFile(dir=tmpdir))
                item.masked_secrets = masker.mask_content(src, out)
                size = out.tell()
                if item.stream is not None and self._stream_check is not None:
                    self._stream_check(item.name, size, True)
                out.seek(0)
                if size <= SMALL_BLOB:
                    return self._small_blob(out.read(), progress)
                return self._objects.add_blob_stream(out, size, item.name, progress)
        except OSError as e:
            raise InputError(f"{item.path or item.name}: {e.strerror or e}") from None

    def _store_one(self, item: Input, progress: Progress | None) -> BlobInfo:
        if item.data is not None:
            return self._small_blob(item.data, progress)
        if item.stream is not None:
            return self._store_stream(item.name, item.stream, progress)
        assert item.path is not None and item.stat is not None
        cache = self._cache(item)
        if cache is not None and item.cache_rel is not None:
            hit = cache.lookup(item.cache_rel, item.stat)
            if hit is not None and self._objects.has(hit[0]):
                if progress is not None:
                    progress(item.stat.st_size)
                return BlobInfo(hit[0], hit[1], item.stat.st_size)
        try:
            with _open_input(item) as f:
                st = os.fstat(f.fileno())
                if item.stat.st_size <= SMALL_BLOB:
                    data = f.read(item.stat.st_size + 1)
                    if len(data) != item.stat.st_size:
                        raise InputError(f"{item.path}: changed while it was being stored")
                    info = self._small_blob(data, progress)
                else:
                    info = self._objects.add_blob_stream(f, st.st_size, item.path, progress)
        except OSError as e:
            raise InputError(f"{item.path}: {e.strerror}") from None
        if cache is not None and item.cache_rel is not None:
            with contextlib.suppress(OSError):
                if stat_key(os.stat(item.path)) == stat_key(item.stat):
                    cache.record(item.cache_rel, item.stat, info.oid, info.sha256)
        return info

    def _cache(self, item: Input) -> StatCache | None:
        """The stat index of the folder ``item`` was read from (None: a memory store)."""
        if self._path is None or item.cache_root is None:
            return None
        cache = self.caches.get(item.cache_root)
        if cache is None:
            cache_dir = os.path.join(self._path, "gitstore", "statcache")
            cache = StatCache(cache_dir, item.cache_root, fsync=self._fsync)
            self.caches[item.cache_root] = cache
        return cache

    def _small_blob(self, data: bytes, progress: Progress | None) -> BlobInfo:
        if len(data) > SMALL_BLOB:
            info = self._objects.add_blob(data)
        else:
            info = hash_bytes(data)
            self.batch.add(data)
        if progress is not None:
            progress(len(data))
        return info

    def _store_stream(self, name: str, stream: IO[bytes], progress: Progress | None) -> BlobInfo:
        """A stream of unknown size: small ones in memory, larger ones spooled to a temp file."""
        check = self._stream_check
        head = _read_upto(stream, SMALL_BLOB + 1)
        if len(head) <= SMALL_BLOB:
            if check is not None:
                check(name, len(head), True)
            return self._small_blob(head, progress)
        if check is not None:
            check(name, len(head), False)
        if self._path is None:
            rest = _read_upto(stream, -1)
            if check is not None:
                check(name, len(head) + len(rest), True)
            return self._small_blob(head + rest, progress)
        spool = os.path.join(
            self._path, "objects", f"tmp_spool_{os.getpid()}_{os.urandom(6).hex()}"
        )
        fd = os.open(spool, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        # Held while this writer lives, so gc never takes a slow spool for an abandoned one.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(fd, "w+b") as f:
                f.write(head)
                read = len(head)
                while chunk := stream.read(1 << 20):
                    read += len(chunk)
                    if check is not None:
                        check(name, read, False)
                    f.write(chunk)
                size = f.tell()
                if check is not None:
                    check(name, size, True)
                f.seek(0)
                return self._objects.add_blob_stream(f, size, name, progress)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spool)


def prepare(
    address: str,
    artifacts: Mapping[str, Source | Artifact],
    content_type: str | None,
    tags: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
    follow_symlinks: bool = False,
) -> tuple[str, str, list[Input]]:
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
    check_layout(names)
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
) -> list[Input]:
    """Check every name and open every source before anything is written."""
    out: list[Input] = []
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
                Input(name, ctype or _text_type(name), tags, spec.executable, data=src.encode())
            )
        elif isinstance(src, (bytes, bytearray, memoryview)):
            out.append(Input(name, ctype, tags, spec.executable, data=bytes(src)))
        elif hasattr(src, "read"):
            out.append(Input(name, ctype, tags, spec.executable, stream=src))
        else:
            raise UsageError(
                f"artifact {name!r}: cannot store a {type(src).__name__} "
                "(give bytes, str, a pathlib.Path or a binary stream)"
            )
        _with_facts(spec, out[-1:])
    return out


def _with_facts(spec: Artifact, inputs: list[Input]) -> list[Input]:
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
) -> list[Input]:
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
            Input(
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
    found: list[Input] = []
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
                Input(
                    art,
                    ctype,
                    tags,
                    exe,
                    path=full,
                    stat=fst,
                    cache_root=root,
                    cache_rel=rel,
                    nofollow=not os.path.islink(full),
                )
            )
    if not found:
        raise InputError(f"{path}: the folder holds no files")
    return found


def _open_input(item: Input) -> BinaryIO:
    """``item``'s file, opened for reading; one found inside a folder must still be no link."""
    assert item.path is not None
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_NOFOLLOW if item.nofollow else 0)
    try:
        fd = os.open(item.path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and item.nofollow:
            raise InputError(
                f"{item.path}: became a symbolic link while the folder was being put"
            ) from None
        raise
    return cast(BinaryIO, os.fdopen(fd, "rb"))


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


def _text_type(name: str) -> str:
    """The type of a str value: guessed from the name, and text where the name says nothing."""
    guessed = guess_type(name)
    return "text/plain" if guessed == "application/octet-stream" else guessed


def _check_readable(path: str) -> None:
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def mask_fields(
    masker: Masker,
    run_id: str | None,
    message: str | None,
    metadata: Mapping[str, Any] | None,
    inputs: list[Input],
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
