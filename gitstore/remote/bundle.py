"""Bundles: task refs and what they reach written to a Git bundle file, and read back in like a
pull (fast-forward or merge, never a forced ref)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO

from dulwich.bundle import create_bundle_from_repo, write_bundle
from dulwich.repo import Repo

from gitstore._fs import atomic_write
from gitstore.errors import CorruptTransferError, InputError, NotFoundError, RemoteError
from gitstore.model import TaskUpdate, TransferResult
from gitstore.remote import rewrites
from gitstore.remote.config import store_gitdir
from gitstore.remote.pull import integrate_all
from gitstore.remote.scope import Scope, ref_of, task_of
from gitstore.remote.transport import Progress, new_pack_stats, pack_files, transport_errors
from gitstore.store import Store

__all__ = ["bundle_create", "bundle_import"]


def bundle_create(
    store: Store, file: str | os.PathLike[str], scope: Sequence[str] = ()
) -> TransferResult:
    """Write the task refs (all, or ``scope``) and every object they reach as a Git bundle.

    The bundle is a v2 bundle that ``git bundle verify`` and ``git fetch`` read. It is written to
    a temp file beside ``file`` and renamed into place.
    """
    gitdir = store_gitdir(store)
    sel = Scope(scope)
    heads = {k: v for k, v in store.heads().items() if sel.covers(k)}
    if not heads:
        raise NotFoundError("no task to bundle" + (f" in {' '.join(scope)}" if scope else ""))
    target = os.path.abspath(os.fspath(file))
    result = TransferResult("bundle", target)
    repo = Repo(gitdir)
    try:
        refs = [ref_of(k) for k in heads] + rewrites.record_refs(store.versions)
        bundle = create_bundle_from_repo(repo, refs=refs, version=2)
        try:
            with atomic_write(target, fsync=store.settings.fsync) as f:
                write_bundle(f, bundle)
        except OSError as e:
            raise InputError(f"{target}: cannot be written ({e.strerror or e})") from None
        result.objects = len(bundle.pack_data) if bundle.pack_data is not None else 0
        bundle.close()
    finally:
        repo.close()
    result.bytes = os.path.getsize(target)
    for key, sha in heads.items():
        result.updated.append(TaskUpdate(key, "created", None, sha))
    return result


def bundle_import(
    store: Store, file: str | os.PathLike[str], *, progress: Progress | None = None
) -> TransferResult:
    """Bring in the task refs of a Git bundle (made by gitstore or ``git bundle create``).

    Works like :func:`pull` from the bundle: fast-forward or merge, never a forced ref. The pack
    is streamed from the file into the store's pack folder and indexed there (deltas included),
    rather than through dulwich's bundle client, which reads the whole pack into memory and
    cannot resolve the deltas stock git writes.
    """
    gitdir = store_gitdir(store)
    path = os.path.abspath(os.fspath(file))
    result = TransferResult("bundle", path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the pack is read
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    with f:
        refs, prerequisites = _bundle_header(f, path)
        missing = [p for p in prerequisites if not store.versions.has(p)]
        if missing:
            raise RemoteError(
                f"{path}: the bundle builds on {len(missing)} commit(s) this store lacks "
                f"(first: {missing[0]}); import the bundle it continues first"
            )
        heads = {k: v for k, v in ((task_of(r.encode()), v) for r, v in refs.items()) if k}
        before = pack_files(gitdir)
        repo = Repo(gitdir)
        try:
            with transport_errors(path):
                repo.object_store.add_thin_pack(f.read, None)
        finally:
            repo.close()
    result.objects, result.bytes = new_pack_stats(gitdir, before)
    integrate_all(store, heads, result, progress, rewrites.records_of(refs))
    return result


def _bundle_header(f: IO[bytes], path: str) -> tuple[dict[str, str], list[str]]:
    """The refs and prerequisites of a v2/v3 bundle; ``f`` is left at the start of the pack."""
    first = f.readline(64)
    if first not in (b"# v2 git bundle\n", b"# v3 git bundle\n"):
        raise CorruptTransferError(f"{path}: not a Git bundle")
    refs: dict[str, str] = {}
    prerequisites: list[str] = []
    while True:
        line = f.readline(4096)
        if not line.endswith(b"\n"):
            raise CorruptTransferError(f"{path}: the bundle header is damaged")
        if line == b"\n":
            break
        text = line[:-1].decode("utf-8", "replace")
        if text.startswith("@"):
            if text.startswith("@object-format=") and text != "@object-format=sha1":
                raise CorruptTransferError(f"{path}: only SHA-1 bundles can be imported")
            continue
        if text.startswith("-"):
            prerequisites.append(text[1:41])
            continue
        sha, _, ref = text.partition(" ")
        if len(sha) != 40 or not ref:
            raise CorruptTransferError(f"{path}: the bundle header is damaged")
        refs[ref] = sha
    return refs, prerequisites
