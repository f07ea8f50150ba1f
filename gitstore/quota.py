"""Quotas: ``gitstore.maxSize`` and ``gitstore.maxArtifactSize``, checked before a put writes.

- **maxArtifactSize** is checked against each artifact's size as the put is given it (a file's
  size, the length of bytes or text), before anything is written. A stream of unknown size is
  counted as it is read (spooled to a temp file, as put always spools streams) and refused the
  moment it passes the limit: the spool is removed, no blob of it is written, no ref moves.
- **maxSize** bounds the store's bytes on disk: every file under ``objects/`` (loose objects,
  packs and their indexes, temp files of writes in flight), what ``git count-objects -v`` adds
  up as ``size`` + ``size-pack`` + ``size-garbage``. A put is refused when the bytes on disk
  plus the artifacts' sizes would pass it. The artifacts' sizes are an upper bound of what the
  put adds (gitstore compresses, and bytes already stored are not stored twice): a put that
  *could* cross the limit is refused, and the check reads no byte of the inputs to find out
  more. A stream counts once it has been read.
- The bytes on disk are measured from the sizes of the files under ``objects/`` (one
  ``scandir`` per folder, no object read), at most once every :data:`MEASURE_EVERY` seconds per
  open store; in between, each accepted put adds its artifacts' sizes. Other processes' puts of
  the last few seconds may be missing from the figure: the limit can be passed by what
  concurrent writers put within that window, never by one put alone.

Nothing here runs when neither setting is present.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

from gitstore.backend.config import Settings
from gitstore.errors import ArtifactTooLargeError, StoreFullError
from gitstore.model import human_bytes

__all__ = ["MEASURE_EVERY", "Quota", "StreamCheck", "disk_usage"]

MEASURE_EVERY = 5.0

# Called by put as a stream is read: (artifact name, bytes read so far, whether that is all).
StreamCheck = Callable[[str, int, bool], None]


def disk_usage(objects_dir: str) -> int:
    """Bytes of every file under ``objects_dir`` (symbolic links not followed)."""
    total = 0
    todo = [objects_dir]
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue  # removed meanwhile (a merge, a rename into place)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


class Quota:
    """The limits of one open store and its cached bytes on disk. Safe to share by threads.

    Args:
      gitdir: the store's Git directory (None: a store in memory, which has no limits).
      settings: the store's settings (``max_size``, ``max_artifact_size``).
    """

    def __init__(self, gitdir: str | None, settings: Settings) -> None:
        self.gitdir = gitdir
        self.max_size = settings.max_size if gitdir else None
        self.max_artifact_size = settings.max_artifact_size if gitdir else None
        self._lock = threading.Lock()
        self._used = 0
        self._measured = float("-inf")

    @property
    def active(self) -> bool:
        """Is any limit set?"""
        return self.max_size is not None or self.max_artifact_size is not None

    def used(self) -> int:
        """The store's bytes on disk, measured at most every :data:`MEASURE_EVERY` seconds."""
        assert self.gitdir is not None
        with self._lock:
            if time.monotonic() - self._measured >= MEASURE_EVERY:
                self._used = disk_usage(os.path.join(self.gitdir, "objects"))
                self._measured = time.monotonic()
            return self._used

    def added(self, nbytes: int) -> None:
        """Count ``nbytes`` that an accepted put added, until the next measure."""
        with self._lock:
            self._used += nbytes

    def check_put(self, sizes: Sequence[tuple[str, int]], streamed: int = 0) -> None:
        """Refuse a put of artifacts of ``sizes`` (name, bytes) plus ``streamed`` bytes read so
        far from streams, before anything is written.

        Raises:
          ArtifactTooLargeError: an artifact over ``gitstore.maxArtifactSize``.
          StoreFullError: the store would pass ``gitstore.maxSize``.
        """
        if self.max_artifact_size is not None:
            for name, size in sizes:
                self.check_artifact(name, size)
        if self.max_size is not None:
            adding = sum(size for _, size in sizes) + streamed
            used = self.used()
            if used + adding > self.max_size:
                raise StoreFullError(
                    f"this put of {human_bytes(adding)} would bring the store to "
                    f"{human_bytes(used + adding)} on disk, over gitstore.maxSize "
                    f"({human_bytes(self.max_size)}; {human_bytes(used)} used); nothing was "
                    "written. Free space: 'gitstore du' shows what takes it, 'gitstore retain' "
                    "or 'gitstore rm SPEC/TASK --task' then 'gitstore gc --prune-after 0' give it "
                    f"back; or raise the limit: git --git-dir={self.gitdir} config "
                    f"gitstore.maxSize {_suggest(used + adding)}"
                )

    def stream_check(self, sizes: Sequence[tuple[str, int]]) -> StreamCheck:
        """The check a put's streams call as they are read, the put's other artifacts being
        ``sizes`` (already checked by :meth:`check_put`)."""
        known = sum(size for _, size in sizes)
        finished = 0

        def check(name: str, read: int, final: bool) -> None:
            nonlocal finished
            self.check_artifact(name, read, partial=not final)
            self.check_put([], known + finished + read)
            if final:
                finished += read

        return check

    def check_artifact(self, name: str, size: int, *, partial: bool = False) -> None:
        """ArtifactTooLargeError if one artifact of ``size`` bytes (with ``partial``: read so
        far) passes the limit."""
        limit = self.max_artifact_size
        if limit is not None and size > limit:
            what = f"more than {human_bytes(limit)}" if partial else human_bytes(size)
            raise ArtifactTooLargeError(
                f"{name} is {what}, over gitstore.maxArtifactSize ({human_bytes(limit)}); "
                "nothing was written. Store it smaller (compressed, cut, or split), or raise "
                f"the limit: git --git-dir={self.gitdir} config gitstore.maxArtifactSize "
                f"{_suggest(size)}"
            )


def _suggest(size: int) -> str:
    """A limit above ``size`` that reads well in git's units (rounded up to the next GiB, or
    MiB under one GiB)."""
    if size >= 1 << 30:
        return f"{-(-size // (1 << 30)) + 1}g"
    return f"{-(-size // (1 << 20)) + 1}m"
