"""push: task refs sent to a remote, never rewinding one, never sending a secret unasked.

push checks fast-forward itself (the client layer does not): a remote task whose head is not in
our history is refused ("pull first") and the rest is pushed. Each ref update carries the old
value the decision was made on, so a remote that moved meanwhile refuses that ref too. The
versions about to be sent are scanned whole for secret-shaped strings first.

A push of :data:`BULK_FROM` task refs or more (a first push) works from a map of every pack
entry of the store (:class:`gitstore.backend.bulk.PackMap`): it walks, scans and sends from it,
copying entries byte for byte, and its scan runs in batches that trust the clean verdicts earlier
pushes recorded (:meth:`gitstore.scan.Scanner.clean`); only a task whose versions are not proven
clean is scanned version by version, which says where the secret is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from dulwich.object_store import MissingObjectFinder
from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject, generate_unpacked_objects
from dulwich.refs import Ref
from dulwich.repo import Repo

from gitstore import remoteheads
from gitstore.backend.bulk import PackMap
from gitstore.backend.objects import DiskObjects
from gitstore.errors import IntegrityError
from gitstore.model import Refusal, TaskUpdate, TransferResult
from gitstore.names import REFS_PREFIX
from gitstore.remote import aliases as _aliases
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
from gitstore.scan import Scanner, Verdicts
from gitstore.store import Store

__all__ = ["BULK_FROM", "REUSE_ENTRIES_FROM", "push", "push_url"]

# From this many objects on, a push copies packed entries as they are instead of looking each up.
REUSE_ENTRIES_FROM = 1000
# From this many task refs to update on, a push reads every pack index of the store once
# (:class:`gitstore.backend.bulk.PackMap`), walks, scans and sends from that map; below it, the
# few objects of an incremental push are looked up one by one (O(new objects), not O(store)).
BULK_FROM = 64


def push(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
    on_total: Callable[[int], None] | None = None,
) -> TransferResult:
    """Send task refs (all, or ``scope``) to the remote, never rewinding one.

    A remote task whose head is not in our history is left alone and listed in ``refused``
    ("pull first"); every other task is pushed. Only task refs are sent.

    Unless ``allow_secrets``, the versions about to be sent (those the remote lacks) are scanned
    whole by :func:`gitstore.scan.scan_version` (every blob in their trees, their messages,
    metadata, run ids, tags and commits) for secret-shaped strings (the token shapes of
    :class:`gitstore.secrets.Masker`), and a task holding any is refused too, naming where,
    never the secret.

    ``on_total``, if given, is called once the objects to send are counted, with the pack's
    expected size in bytes (their entries as stored here: what goes out when they are reused),
    so that a progress display can show an ETA; it is not called when nothing is sent.

    Raises:
      RemoteUnreachableError, RemoteAuthError, NotAStoreError: the transfer failed.
    """
    name, url = resolve_remote(store, remote)
    return push_url(store, name, url, Scope(scope), progress, allow_secrets, ssh_key, on_total)


def push_url(
    store: Store,
    name: str,
    url: str,
    scope: Scope,
    progress: Progress | None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
    on_total: Callable[[int], None] | None = None,
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
    alias_refs: dict[str, str] = {}
    bulk: list[PackMap] = []  # the map of a big push, made once its size is known

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        planned.clear()
        alias_refs.clear()
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
        objects = store.versions.objects
        if not bulk and len(planned) >= BULK_FROM and isinstance(objects, DiskObjects):
            bulk.append(PackMap(objects))
        if not allow_secrets:
            scanner = Scanner(store.versions)
            clean = _clean_refs(store, planned, bulk[0]) if bulk else set()
            for ref, (old, new) in list(planned.items()):
                if ref in clean:
                    continue
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
        # Aliases of the tasks in scope, by their rule (never a remote value we have not seen);
        # the remote's task heads are haves, so an alias alone sends only its tag.
        remote_refs = {r.decode("utf-8", "replace"): v.decode() for r, v in refs.items()}
        alias_refs.update(_aliases.to_push(store, scope, remote_refs))
        for ref_name, mine in alias_refs.items():
            out[Ref(ref_name.encode())] = ObjectID(mine.encode())
            task_head = refs.get(_aliases.task_ref_of(ref_name))
            if task_head is not None:
                relevant_haves.add(task_head)
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
            haves = set(have) & relevant_haves
            if bulk:
                to_send = bulk[0].missing([w.decode() for w in want], [h.decode() for h in haves])
                result.objects = len(to_send)
                expect([oid for oid, _ in to_send])
                return len(to_send), counted(bulk[0].records(to_send))
            finder = MissingObjectFinder(
                repo.object_store,
                haves=haves,
                wants=set(want),
                shallow=set(),
                progress=progress,
            )
            remote_has = finder.get_remote_has()
            ids = list(finder)
            count = result.objects = len(ids)
            sizing = expect([sha.decode() for sha, _ in ids])
            if sizing is not None:
                # The map made to size the pack for a terminal's ETA sends it too: entries go
                # out as they are stored, a 300 MiB blob streamed instead of inflated whole and
                # deflated again (which also left the bar at 0% until the very end).
                kinds = [(sha.decode(), hint[0] if hint else -1) for sha, hint in ids]
                return count, counted(sizing.records(kinds))
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

            return count, counted(records)

        def expect(oids: list[str]) -> PackMap | None:
            """Announce the pack's expected size to ``on_total``; the map made to size it (None
            when none was made), which the caller sends from. Sized only when someone asks (a
            terminal's progress bar): piped runs pay nothing."""
            if on_total is None or not oids:
                return None
            objects = store.versions.objects
            made = None
            if bulk:
                sized = sum(bulk[0].stored_size(o) for o in oids)
            elif isinstance(objects, DiskObjects):
                made = PackMap(objects)
                bulk.append(made)  # closed with the others when the push ends
                sized = sum(made.stored_size(o) for o in oids)
            else:
                return None
            on_total(sized + 32)  # the pack's 12-byte header and 20-byte trailer
            return made

        def counted(records: Iterator[UnpackedObject]) -> Iterator[UnpackedObject]:
            for rec in records:
                result.bytes += int(rec.decomp_len or 0)
                yield rec

        with transport_errors(url):
            sent = client.send_pack(
                path,  # type: ignore[arg-type]  # every client takes the str it gave us
                update_refs,
                generate_pack_data=generate_pack_data,
                progress=bytes_progress(progress),
            )
    finally:
        repo.close()
        for m in bulk:
            m.close()
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
    # An alias the remote refused (a served store takes task refs only) is simply not there.
    result.aliases += _aliases.landed(alias_refs, status)
    return result


def _clean_refs(
    store: Store, planned: dict[Ref, tuple[str | None, str]], packs: PackMap
) -> set[Ref]:
    """The planned refs all of whose versions to send a batched scan proves clean.

    The rest (a version holding something secret-shaped, or one that cannot be read here) go
    through :func:`secrets_to_send`, which says where. See :meth:`gitstore.scan.Scanner.clean`.
    """
    scanner = Scanner(store.versions, objects=packs, verdicts=Verdicts(store_gitdir(store)))
    per_ref: dict[Ref, list[str]] = {}
    for ref, (old, new) in planned.items():
        try:
            stop = set(packs.commits([old], set())) if old else set()
            per_ref[ref] = packs.commits([new], stop)
        except IntegrityError:
            continue  # the full scan reports it
    clean = scanner.clean({c for commits in per_ref.values() for c in commits})
    return {ref for ref, commits in per_ref.items() if clean.issuperset(commits)}


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
