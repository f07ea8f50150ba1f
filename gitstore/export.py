"""Writing artifacts out to files: a whole version into a folder (:func:`export`), one artifact
to one file (:func:`save`).

Every file is written whole or not at all (:func:`gitstore._fs.atomic_write`: a temp file beside
it, renamed into place, with the artifact's executable bit), and fsync'd as the store's
``gitstore.fsync`` says. An export never writes outside its folder, whatever the store holds: the
whole plan is checked before the first byte is written (see :func:`plan`).
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import stat
import threading

from gitstore._fs import atomic_write, fsync_dir
from gitstore.backend.objects import BlobReader, ObjectBackend, Progress
from gitstore.errors import InvalidNameError, UsageError
from gitstore.model import ArtifactInfo, Version
from gitstore.names import check_artifact_name, check_layout

__all__ = ["EXPORT_THREADS", "export", "save"]

# Files of one export written at the same time.
EXPORT_THREADS = 16


def export(
    objects: ObjectBackend,
    version: Version,
    dest: str | os.PathLike[str],
    *,
    fsync: bool,
    progress: Progress | None = None,
) -> list[str]:
    """Write every artifact of ``version`` under folder ``dest``; return the paths written.

    Existing files of the same names are replaced; each folder is fsync'd once, after its last
    file. See :meth:`gitstore.Store.export` for what is refused.
    """
    root = os.path.abspath(os.fspath(dest))
    if os.path.exists(root) and not os.path.isdir(root):
        raise UsageError(f"{root} exists and is not a folder")
    todo = plan(version, root)
    folders: set[str] = set()
    for _, target in todo:
        folder = os.path.dirname(target)
        if folder not in folders:  # one makedirs per folder, not per file
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
    lock = threading.Lock()

    def counted(n: int) -> None:
        assert progress is not None
        with lock:  # the caller's callback need not be thread-safe
            progress(n)

    def one(art: ArtifactInfo, target: str) -> None:
        with objects.open_blob(art.oid) as src:
            _write(
                target,
                src,
                art.executable,
                counted if progress is not None else None,
                fsync=fsync,
                sync_dir=False,
            )

    # Each file costs a few file-system round trips (create, write, chmod, rename, and an
    # fsync when asked) during which Python waits: several files in flight at once keep the
    # disk busy instead. The first error stops what has not started and is raised.
    if len(todo) < 2:
        for art, target in todo:
            one(art, target)
    else:
        with concurrent.futures.ThreadPoolExecutor(EXPORT_THREADS) as pool:
            futures = [pool.submit(one, art, target) for art, target in todo]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    if fsync:
        for folder in sorted(folders):
            fsync_dir(folder)
    return [target for _, target in todo]


def save(
    objects: ObjectBackend,
    info: ArtifactInfo,
    dest: str | os.PathLike[str],
    *,
    fsync: bool,
    verify: bool = False,
    progress: Progress | None = None,
) -> None:
    """Write the artifact ``info`` describes to file ``dest``, whole or not at all; with
    ``verify`` a sha256 mismatch raises IntegrityError and leaves ``dest`` untouched."""
    with objects.open_blob(info.oid, info.sha256 if verify else None) as src:
        _write(os.fspath(dest), src, info.executable, progress, fsync=fsync)


def _write(
    path: str,
    src: BlobReader,
    executable: bool,
    progress: Progress | None,
    *,
    fsync: bool,
    sync_dir: bool = True,
) -> None:
    mode = 0o755 if executable else 0o644
    with atomic_write(path, mode=mode, fsync=fsync, sync_dir=sync_dir) as out:
        for chunk in src.iter_chunks():
            out.write(chunk)
            if progress is not None:
                progress(len(chunk))


def plan(version: Version, root: str) -> list[tuple[ArtifactInfo, str]]:
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
        check_layout(names)
    except InvalidNameError as e:
        raise InvalidNameError(f"{where}: refusing to export: {e}") from None
    plan = []
    # Folders on the way already looked at: a folder found missing has nothing below it, and
    # one found to be a real folder need not be looked at again for its next file.
    missing: set[str] = set()
    folders: set[str] = set()
    for art in version.artifacts:
        parts = art.name.split("/")
        target = os.path.join(root, *parts)
        for i in range(len(parts)):
            path = os.path.join(root, *parts[: i + 1])
            if path in missing:
                break
            if path in folders and path != target:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                missing.add(path)
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
            if path != target:
                folders.add(path)
        plan.append((art, target))
    return plan
