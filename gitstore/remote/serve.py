"""Git smart HTTP for a store: stock git and gitstore clone, fetch and push, by gitstore's rules.

:func:`git_http_app` is a WSGI application (dulwich's smart-HTTP server) that the HTTP service
mounts at its base URL, so the service's URL is an ordinary Git remote:
``git clone --mirror URL``, ``git fetch URL '+refs/artifacts/*:refs/artifacts/*'`` and
``gitstore clone/pull/push/sync URL`` all work.

Only task refs are served: ``refs/artifacts/SPEC/TASK``. A push goes through :func:`receive`,
the same rules as any other way in, never through dulwich's own ref updates (which report "ok"
for a compare-and-swap they lost):

* only ``refs/artifacts/SPEC/TASK`` refs, never a deletion (delete a task through the API);
* each new head, and every commit it brings, is a valid gitstore version of its own task
  (:func:`gitstore.validate.check_incoming`), so a hostile pack moves no ref;
* no rewinding: the new head must descend from the task's current head ("pull first");
* versions holding secret-shaped strings are refused, naming where (never the secret), as Git
  hosts' push protection does;
* refs move by compare-and-swap on the head the checks were made on, like any local writer.

A refused ref is reported to the Git client as ``ng REF REASON``, which git prints as
``! [remote rejected] REF (REASON)``.

Git's client sends bodies over its post buffer chunked. An ASGI server has already removed the
chunk framing by the time a WSGI bridge hands the body on, so :func:`git_http_app` drops the
``Transfer-Encoding`` header dulwich would otherwise decode a second time (pushes over 1 MiB failed
with "Truncated chunked stream").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from dulwich.objects import ObjectID
from dulwich.protocol import (
    CAPABILITY_ATOMIC,
    CAPABILITY_DELETE_REFS,
    CAPABILITY_NO_DONE,
    CAPABILITY_OFS_DELTA,
    CAPABILITY_QUIET,
    CAPABILITY_REPORT_STATUS,
    CAPABILITY_SIDE_BAND_64K,
    capability_object_format,
)
from dulwich.refs import Ref
from dulwich.server import Backend, ReceivePackHandler, UploadPackHandler
from dulwich.web import make_wsgi_chain

from gitstore import names as _names
from gitstore.errors import GitstoreError, InvalidNameError
from gitstore.names import REFS_PREFIX
from gitstore.remote import rewrites
from gitstore.remote.merge import is_ancestor
from gitstore.remote.push import secrets_to_send
from gitstore.remote.transport import StoreRepo
from gitstore.scan import Scanner
from gitstore.store import Store
from gitstore.validate import check_incoming, escape

__all__ = ["GIT_MAY_WRITE", "git_http_app", "receive"]

ZERO = "0" * 40

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def receive(
    store: Store,
    updates: Sequence[tuple[str, str, str]],
    *,
    atomic: bool = False,
    may_write: Callable[[str], bool] | None = None,
) -> list[tuple[str, str | None]]:
    """Apply pushed ref updates ``(ref, old, new)`` by gitstore's rules; say what each did.

    The objects are already in the store. Each update is checked (see the module docstring)
    and then moved by compare-and-swap from the head it was checked on. ``may_write(spec)``
    says whether the pusher may write that spec (a token limited to some specs). Returns
    ``(ref, None)`` for a ref that moved and ``(ref, reason)`` for one refused; with ``atomic``,
    one refusal refuses them all and nothing moves.
    """
    # Rewrite and purge records first: a task head they supersede may then be replaced.
    records, updates = rewrites.split_records(updates)
    received = rewrites.receive_records(store, records, unrestricted=may_write is None)
    checked: list[tuple[str, str | None, str, str | None]] = []  # ref, current, new, reason
    scanner = Scanner(store.versions)
    for ref, old, new in updates:
        current, reason = _check(store, ref, old, new, scanner, may_write)
        checked.append((ref, current, new, reason))
    if atomic and any(reason for *_, reason in checked):
        return [(ref, reason or "atomic push failed") for ref, _, _, reason in checked]
    out: list[tuple[str, str | None]] = list(received)
    for ref, current, new, reason in checked:
        if reason is None and not store.versions.refs.cas(ref, current, new):
            reason = "the task moved while the push was checked; fetch and push again"
        out.append((ref, reason))
    return out


def _check(
    store: Store,
    ref: str,
    old: str,
    new: str,
    scanner: Scanner,
    may_write: Callable[[str], bool] | None,
) -> tuple[str | None, str | None]:
    """The task's current head, and why the update is refused (None: it may go ahead)."""
    key = _task_key(ref)
    if key is None:
        return None, "only refs/artifacts/SPEC/TASK can be pushed to a gitstore"
    spec, task = key.split("/")
    versions = store.versions
    current = versions.refs.get(ref)
    if may_write is not None and not may_write(spec):
        return current, f"this token may not write spec {spec!r}"
    if new == ZERO:
        return current, "a task is not deleted by push; delete it with 'gitstore rm --task'"
    if (old if old != ZERO else None) != current:
        return current, "the task has versions this push did not know of; pull first"
    if (
        current is not None
        and not is_ancestor(versions, current, new)
        and not rewrites.superseded(versions, current, new)
    ):
        return current, "the task has versions this push lacks; pull first"
    try:
        check_incoming(
            versions.objects, spec, task, new, local_head=current, known_number=versions.number
        )
    except GitstoreError as e:
        return current, escape(str(e))
    found = secrets_to_send(store, key, new, current, scanner)
    if found:
        return current, (
            f"{len(found)} secret-shaped string(s) in the versions pushed (first: {found[0]}); "
            "mask them (gitstore put --mask-secrets) and push again"
        )
    return current, None


def _task_key(ref: str) -> str | None:
    if not ref.startswith(REFS_PREFIX):
        return None
    parts = ref[len(REFS_PREFIX) :].split("/")
    if len(parts) != 2:
        return None
    try:
        for part in parts:
            _names.check_component(part)
    except InvalidNameError:
        return None
    return "/".join(parts)


class _ServedRepo(StoreRepo):
    """The store as a Git server shows it: task refs only (no HEAD, no branches, no tags)."""

    def get_refs(self) -> dict[Ref, ObjectID]:
        return {
            ref: sha
            for ref, sha in super().get_refs().items()
            if _task_key(ref.decode("utf-8", "replace")) is not None
            or ref.decode("utf-8", "replace") in rewrites.RECORD_REFS
        }


class _Backend(Backend):
    """One store; a fresh repository object per request (dulwich's are not shared by threads).

    ``may_write`` is the pusher's spec rule for this request (see :func:`git_http_app`).
    """

    def __init__(self, store: Store, may_write: Callable[[str], bool] | None = None) -> None:
        if store.path is None:
            raise ValueError("Git over HTTP needs a store on disk")
        self.store = store
        self.gitdir = store.path
        self.may_write = may_write

    def open_repository(self, path: str) -> _ServedRepo:
        return _ServedRepo(self.gitdir)


class _UploadPack(UploadPackHandler):
    """Fetches, with the repository closed when the request is done."""

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            self.repo.close()  # type: ignore[attr-defined]


class _ReceivePack(ReceivePackHandler):
    """Pushes: the pack is indexed into the store, then every ref goes through :func:`receive`."""

    def capabilities(self) -> Iterable[bytes]:
        # delete-refs is offered so that git sends a deletion and prints why it is refused.
        return [
            CAPABILITY_REPORT_STATUS,
            CAPABILITY_DELETE_REFS,
            CAPABILITY_QUIET,
            CAPABILITY_ATOMIC,
            CAPABILITY_OFS_DELTA,
            CAPABILITY_SIDE_BAND_64K,
            CAPABILITY_NO_DONE,
            capability_object_format(self.repo.object_format.name),
        ]

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            self.repo.close()  # type: ignore[attr-defined]

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        if any(new.decode() != ZERO for _, new, _ in refs):
            try:
                recv = getattr(self.proto, "recv", None)
                self.repo.object_store.add_thin_pack(self.proto.read, recv)  # type: ignore[attr-defined]
            except Exception as e:  # any failure to read the pack is the client's to see
                yield (b"unpack", " ".join(str(e).split())[:200].encode("utf-8", "replace"))
                return
        yield (b"unpack", b"ok")
        backend: _Backend = self.backend  # type: ignore[assignment]
        store = backend.store
        updates = [
            (ref.decode("utf-8", "replace"), old.decode(), new.decode()) for old, new, ref in refs
        ]
        atomic = self.has_capability(CAPABILITY_ATOMIC)
        for ref, reason in receive(store, updates, atomic=atomic, may_write=backend.may_write):
            status = (
                b"ok" if reason is None else " ".join(reason.split()).encode("utf-8", "replace")
            )
            yield (ref.encode("utf-8", "surrogateescape"), status)


# The WSGI environ key through which whoever authenticated a push says which specs it may write.
GIT_MAY_WRITE = "gitstore.may_write"


def git_http_app(store: Store) -> WSGIApp:
    """A WSGI application serving ``store`` over Git smart HTTP (fetch and push) at its root.

    It does no authentication: the HTTP service in front of it decides who may fetch
    (``GET .../info/refs?service=git-upload-pack``, ``POST .../git-upload-pack``) and who may
    push (``service=git-receive-pack``, ``POST .../git-receive-pack``), and may put a
    ``spec -> bool`` callable under :data:`GIT_MAY_WRITE` in the WSGI environ to limit a push to
    the specs a token covers.
    """
    handlers: dict[bytes, Callable[..., Any]] = {
        b"git-upload-pack": _UploadPack,
        b"git-receive-pack": _ReceivePack,
    }

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # The ASGI server decoded the chunked body already; dulwich must not decode it again.
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        # A chain per request is a few small objects; it carries this request's spec rule.
        chain = make_wsgi_chain(_Backend(store, environ.get(GIT_MAY_WRITE)), handlers=handlers)
        return chain(environ, start_response)

    return app
