"""push: task refs sent to a remote, never rewinding one, never sending a secret unasked.

push checks fast-forward itself (the client layer does not): a remote task whose head is not in
our history is refused ("pull first") and the rest is pushed. Each ref update carries the old
value the decision was made on, so a remote that moved meanwhile refuses that ref too. The
versions about to be sent are scanned whole for secret-shaped strings first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from dulwich.object_store import MissingObjectFinder
from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject, generate_unpacked_objects
from dulwich.refs import Ref
from dulwich.repo import Repo

from gitstore import remoteheads
from gitstore.model import Refusal, TaskUpdate, TransferResult
from gitstore.names import REFS_PREFIX
from gitstore.remote import rewrites
from gitstore.remote.config import resolve_remote, store_gitdir
from gitstore.remote.merge import ancestors, is_ancestor
from gitstore.remote.scope import Scope, ref_of
from gitstore.remote.transport import (
    Progress,
    bytes_progress,
    client_for,
    one_line,
    transport_errors,
)
from gitstore.scan import Scanner
from gitstore.store import Store

__all__ = ["REUSE_ENTRIES_FROM", "push", "push_url"]

# From this many objects on, a push copies packed entries as they are instead of looking each up.
REUSE_ENTRIES_FROM = 1000


def push(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
) -> TransferResult:
    """Send task refs (all, or ``scope``) to the remote, never rewinding one.

    A remote task whose head is not in our history is left alone and listed in ``refused``
    ("pull first"); every other task is pushed. Only task refs are sent.

    Unless ``allow_secrets``, the versions about to be sent (those the remote lacks) are scanned
    whole by :func:`gitstore.scan.scan_version` (every blob in their trees, their messages,
    metadata, run ids, tags and commits) for secret-shaped strings (the token shapes of
    :class:`gitstore.secrets.Masker`), and a task holding any is refused too, naming where,
    never the secret.

    Raises:
      RemoteUnreachableError, RemoteAuthError, NotAStoreError: the transfer failed.
    """
    name, url = resolve_remote(store, remote)
    return push_url(store, name, url, Scope(scope), progress, allow_secrets, ssh_key)


def push_url(
    store: Store,
    name: str,
    url: str,
    scope: Scope,
    progress: Progress | None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
) -> TransferResult:
    """:func:`push` to ``url`` (the remote ``name``, or the URL itself), for sync."""
    gitdir = store_gitdir(store)
    result = TransferResult(name, url)
    local = {k: v for k, v in store.heads().items() if scope.covers(k)}
    client, path = client_for(url, "push", ssh_key)
    planned: dict[Ref, tuple[str | None, str]] = {}
    records: dict[str, tuple[str | None, str]] = {}  # rewrite and purge records sent
    theirs_now: dict[str, str] = {}  # what the remote holds, for gitstore.remoteheads
    relevant_haves: set[ObjectID] = set()

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        planned.clear()
        result.refused.clear()
        result.up_to_date = 0
        out: dict[Ref, ObjectID] = {}
        for key, mine in local.items():
            ref = ref_of(key)
            theirs = refs.get(ref)
            theirs_s = theirs.decode() if theirs is not None else None
            if theirs_s is not None:
                theirs_now[key] = theirs_s
            if theirs_s == mine:
                result.up_to_date += 1
            elif (
                theirs_s is None
                or is_ancestor(store.versions, theirs_s, mine)
                # A head our rewrite records say we rewrote into ours: replaced, not lost.
                or rewrites.superseded(store.versions, theirs_s, mine)
            ):
                out[ref] = ObjectID(mine.encode())
                planned[ref] = (theirs_s, mine)
                if theirs is not None and store.versions.has(theirs.decode()):
                    relevant_haves.add(theirs)
            else:
                result.refused.append(
                    Refusal(key, "the remote has versions of this task that we lack; pull first")
                )
        if not allow_secrets:
            scanner = Scanner(store.versions)
            for ref, (old, new) in list(planned.items()):
                key = ref[len(REFS_PREFIX) :].decode()
                found = secrets_to_send(store, key, new, old, scanner)
                if found:
                    del planned[ref], out[ref]
                    result.refused.append(
                        Refusal(
                            key,
                            f"{len(found)} secret-shaped string(s) in the versions to send "
                            f"(first: {found[0]}); mask them, or push with --allow-secrets",
                            "secrets",
                        )
                    )
        records.clear()
        records.update(rewrites.record_updates(store.versions, refs))
        out.update({Ref(r.encode()): ObjectID(new.encode()) for r, (_, new) in records.items()})
        return out

    repo = Repo(gitdir)
    try:

        def generate_pack_data(
            have: Iterable[ObjectID],
            want: Iterable[ObjectID],
            *,
            ofs_delta: bool = False,
            progress: Callable[..., None] | None = None,
        ) -> tuple[int, Iterator[UnpackedObject]]:
            # The remote offers every ref it has as a "have"; walking 10k of them costs far more
            # than it saves, so only the old heads of the tasks being updated are used.
            finder = MissingObjectFinder(
                repo.object_store,
                haves=set(have) & relevant_haves,
                wants=set(want),
                shallow=set(),
                progress=progress,
            )
            remote_has = finder.get_remote_has()
            ids = list(finder)
            count = result.objects = len(ids)
            # Reusing packed entries as they are (no inflate, no re-deflate) means reading every
            # entry of every pack to find them: worth it for a big push, not for a few objects
            # in a store of 10k tasks (2.7 s for 5 objects), which are looked up one by one.
            records = generate_unpacked_objects(
                repo.object_store,
                ids,
                reuse_deltas=count >= REUSE_ENTRIES_FROM,
                ofs_delta=ofs_delta,
                other_haves=remote_has,
                progress=progress,
            )

            def counted() -> Iterator[UnpackedObject]:
                for rec in records:
                    result.bytes += int(rec.decomp_len or 0)
                    yield rec

            return count, counted()

        with transport_errors(url):
            sent = client.send_pack(
                path,  # type: ignore[arg-type]  # every client takes the str it gave us
                update_refs,
                generate_pack_data=generate_pack_data,
                progress=bytes_progress(progress),
            )
    finally:
        repo.close()
    status = sent.ref_status or {}
    for name in sorted(records):
        if status.get(Ref(name.encode())):
            why = one_line(Exception(status[Ref(name.encode())]))
            result.refused.append(Refusal(name, f"the remote refused it ({why})", "rejected"))
    for ref, (old, new) in sorted(planned.items()):
        key = ref[len(REFS_PREFIX) :].decode()
        error = status.get(ref)
        if error:
            reason = f"the remote refused it ({one_line(Exception(error))}); pull first"
            result.refused.append(Refusal(key, reason, "rejected"))
        else:
            result.updated.append(
                TaskUpdate(key, "created" if old is None else "fast-forward", old, new)
            )
            theirs_now[key] = new
    if name != url:  # a remote of the config: its state has a name to be kept under
        remoteheads.record(gitdir, name, theirs_now, fsync=store.settings.fsync)
    result.refused.sort(key=lambda r: r.task)
    return result


def secrets_to_send(
    store: Store, key: str, mine: str, theirs: str | None, scanner: Scanner | None = None
) -> list[str]:
    """Where secret-shaped strings sit in the versions of ``key`` the remote lacks.

    Each version is read whole by :func:`gitstore.scan.scan_version` (every blob in its tree,
    its message, metadata, run id, tags, commit), newest first, each thing reported once.
    ``scanner`` (shared by the tasks of one push) reads each blob once.
    """
    versions = store.versions
    scanner = scanner or Scanner(versions)
    sent = ancestors(versions, [mine])
    seen: set[str] = set()
    if theirs and versions.has(theirs):
        sent -= ancestors(versions, [theirs])
        # What the remote's head holds was sent before: reading it again would refuse a clean
        # new version for what the remote was allowed to receive earlier.
        seen = scanner.held(theirs)

    # Newest first, so that what several versions hold is reported at the newest.
    order = sorted(sent, key=lambda c: (versions.number(c), c), reverse=True)
    return [str(f) for commit in order for f in scanner.version(commit, seen)]
