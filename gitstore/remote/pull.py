"""pull: the remote's task refs brought in, checked before any ref moves.

Objects are fetched into the store's object folder without touching refs; every fetched head
must then pass :func:`gitstore.validate.check_incoming` (each new commit a version of its task)
before any ref moves; then each task fast-forwards, or gains a merge version when both sides
have versions the other lacks (:mod:`gitstore.remote.merge`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dulwich.objects import ObjectID
from dulwich.refs import Ref

from gitstore import remoteheads
from gitstore.errors import CorruptTransferError, NotAStoreError, RemoteAuthError, RemoteError
from gitstore.model import TransferResult, redact_url
from gitstore.remote import aliases as _aliases
from gitstore.remote import rewrites
from gitstore.remote.config import resolve_remote, store_gitdir
from gitstore.remote.merge import integrate
from gitstore.remote.scope import Scope, task_of
from gitstore.remote.transport import (
    Progress,
    StoreRepo,
    bytes_progress,
    client_for,
    fetch_objects,
    new_pack_stats,
    pack_files,
    transport_errors,
)
from gitstore.store import Store
from gitstore.validate import check_incoming

__all__ = ["integrate_all", "pull", "pull_url"]


def pull(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    ssh_key: str | None = None,
) -> TransferResult:
    """Bring the remote's task refs (all, or ``scope``: ``SPEC`` or ``SPEC/TASK`` items) in.

    Objects land in the store's object folder first; no ref moves until every fetched head has
    been checked to be a gitstore version of its task. Then each task fast-forwards, or gains a
    merge version when both sides have versions the other lacks.

    Raises:
      RemoteUnreachableError, RemoteAuthError, NotAStoreError, CorruptTransferError: the transfer
        failed; local refs are untouched.
    """
    name, url = resolve_remote(store, remote)
    return pull_url(store, name, url, Scope(scope), progress, ssh_key)


def pull_url(
    store: Store,
    name: str,
    url: str,
    scope: Scope,
    progress: Progress | None,
    ssh_key: str | None = None,
) -> TransferResult:
    """:func:`pull` from ``url`` (the remote ``name``, or the URL itself), for clone and sync."""
    gitdir = store_gitdir(store)
    result = TransferResult(name, url)
    client, path = client_for(url, "pull", ssh_key)
    remote_heads: dict[str, str] = {}
    records: dict[str, str] = {}  # refs/gitstore/{rewrites,purges} offered
    alias_heads: dict[str, str] = {}
    repo = StoreRepo(gitdir)
    try:

        def determine_wants(
            refs: Mapping[Ref, ObjectID], depth: int | None = None
        ) -> list[ObjectID]:
            wants: list[ObjectID] = []
            haves: list[ObjectID] = []
            for ref, sha in refs.items():
                if rewrites.offered(ref, sha, records) and not store.versions.has(sha.decode()):
                    wants.append(sha)
                key = task_of(ref)
                if key is None or sha is None or not scope.covers(key):
                    continue
                if rewrites.known(store.versions, sha.decode()):
                    continue  # a head our records say was rewritten: what it became is here
                remote_heads[key] = sha.decode()
                if not store.versions.has(sha.decode()):
                    wants.append(sha)
                    local = store.versions.head(*key.split("/"))
                    if local is not None:
                        haves.append(ObjectID(local.encode()))
            found, missing = _aliases.fetch_wants(store, refs, scope)
            alias_heads.update(found)
            wants.extend(missing)
            if repo.walker is not None:
                repo.walker.heads = set(haves)
            return sorted(set(wants))

        before = pack_files(gitdir)
        try:
            with transport_errors(url):
                fetch_objects(client, path, repo, determine_wants, bytes_progress(progress))
        except RemoteError as e:
            if isinstance(e, (RemoteAuthError, NotAStoreError)):
                raise
            wanted = sorted(k for k, v in remote_heads.items() if not store.versions.has(v))
            if not wanted:
                raise
            # The remote answered with its refs, so it was reached; what failed is sending their
            # objects (a ref pointing at an object it lacks, damage it refuses to pack, or a cut
            # connection): the transfer is incomplete, whoever is to blame.
            where = redact_url(url)
            detail = str(e).removeprefix(f"{where}: ")
            shown = ", ".join(f"refs/artifacts/{k}" for k in wanted[:3])
            more = f" and {len(wanted) - 3} more" if len(wanted) > 3 else ""
            raise CorruptTransferError(
                f"{where}: the remote did not send the objects of {shown}{more} ({detail}); "
                "no ref moved"
            ) from None
    finally:
        repo.close()
    result.objects, result.bytes = new_pack_stats(gitdir, before)
    integrate_all(store, remote_heads, result, progress, records, alias_heads)
    if name != url:  # a remote of the config: its state has a name to be kept under
        remoteheads.record(gitdir, name, remote_heads, fsync=store.settings.fsync)
    return result


def integrate_all(
    store: Store,
    heads: Mapping[str, str],
    result: TransferResult,
    progress: Progress | None,
    records: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Bring every fetched head in, once each has been checked to be a version of its task;
    then the fetched ``aliases`` (alias ref -> tag id, see :mod:`gitstore.remote.aliases`)."""
    # Checked before any ref moves, so a remote with one bad ref changes nothing here.
    for key, sha in sorted(heads.items()):
        spec, task = key.split("/")
        check_incoming(
            store.versions.objects,
            spec,
            task,
            sha,
            local_head=store.versions.head(spec, task),
            known_number=store.versions.number,
        )
    _aliases.check(store, aliases or {})
    # Rewrite and purge records: merged, applied here, and to the fetched chains.
    heads = rewrites.settle(store, heads, records or {})
    for key, sha in sorted(heads.items()):
        spec, task = key.split("/")
        update = integrate(store.versions, spec, task, sha)
        if update.action == "merged":
            result.merged.append(update)
        elif update.action in ("created", "fast-forward"):
            result.updated.append(update)
        else:
            result.up_to_date += 1
        if progress is not None and update.action == "merged" and update.conflicts:
            progress(f"merged {key}: {len(update.conflicts)} conflicting name(s)")
    _aliases.integrate(store, aliases or {}, result)
    rewrites.expunge_purged(store)
