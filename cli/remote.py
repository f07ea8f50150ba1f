"""``gitstore remote|clone|push|pull|sync|bundle``: thin commands over :mod:`gitstore.remote`.

Each command opens the store, makes one library call and prints a summary (or, with ``--json``,
the transfer's summary document). A push that refused tasks prints what it did, then exits with
:class:`~gitstore.PushRefusedError`'s code naming the refused tasks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitstore import NotFoundError, PushRefusedError

from .hints import close, refuse_misplaced_remote, suggest_scope, with_hint
from .output import Transfer, emit_json, io_progress, open_store, say, size, table
from .params import REMOTE, REMOTE_OR_SCOPE

if TYPE_CHECKING:
    from types import ModuleType

    from gitstore import Store
    from gitstore.remote import TransferResult

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])


# gitstore.cli.main imports this module to register its commands, so these four helpers are
# repeated here rather than imported back from it (``python -m gitstore.cli.main`` would load
# that module a second time).
def json_option(f: F) -> F:
    """``--json``: print one JSON document on stdout instead of text."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(f)


def ssh_key_option(f: F) -> F:
    """``--ssh-key PATH``: the private key ssh uses (else the usual places)."""
    return click.option(
        "--ssh-key",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="GITSTORE_SSH_KEY",
        show_envvar=True,
        help="Private key for ssh:// and user@host:path remotes (else ssh's usual places).",
    )(f)


def _key(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def allow_secrets_option(f: F) -> F:
    """``--allow-secrets``: push versions even when they hold secret-shaped strings."""
    return click.option(
        "--allow-secrets",
        is_flag=True,
        help="Push versions even if they hold secret-shaped strings (refused by default).",
    )(f)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _lib() -> ModuleType:
    """gitstore.remote, imported when a command runs: it loads dulwich's network clients
    (urllib3 ...), which every other command would otherwise pay for at startup."""
    import gitstore.remote

    return gitstore.remote


@contextlib.contextmanager
def _progress(label: str, into: Store | Path | None = None) -> Iterator[Transfer | None]:
    """Transfer progress on stderr when it is a terminal (bytes moved, rate, the remote's last
    line of text); nothing when piped. ``into``: the store that receives (its objects folder
    is watched). See :func:`.output.io_progress`."""
    objects = None
    if into is not None:
        root = into if isinstance(into, Path) else Path(str(into.path))
        objects = root / "objects"
    with io_progress(label, objects) as line:
        yield line


def _split(store: Store, args: Sequence[str], verb: str) -> tuple[str | None, list[str]]:
    """``[REMOTE] [SPEC[/TASK]...]``: the first argument is a remote if it names one.

    It names one when it is a recorded remote, a URL, ``user@host:path``, an existing path, or
    looks like a path (``/``, ``.`` or ``~`` first, ``.git`` last); otherwise every argument is a
    spec or task and the remote is ``origin``. REMOTE only ever comes first: a recorded remote's
    name later on (``push s/t backup``) is refused with the order to use, rather than taken as
    a spec or left for "no remote given".
    """
    if not args:
        return None, []
    first = args[0]
    known = _remote_names(store)
    pathlike = first.startswith(("/", ".", "~")) or first.endswith((".git", ".bundle"))
    if first in known or "://" in first or pathlike or os.path.exists(first) or _looks_scp(first):
        return first, list(args[1:])
    refuse_misplaced_remote(args, known, verb)
    return None, list(args)


def _remote_names(store: Store) -> list[str]:
    return [r.name for r in _lib().remotes(store)]


def _check_local_scope(store: Store, scope: Sequence[str]) -> None:
    """Each SPEC or SPEC/TASK to push must match a task here: a typo is not "0 up to date"."""
    for item in scope:
        try:
            store.heads_in(item)
        except NotFoundError:
            raise NotFoundError(suggest_scope(store, item, _remote_names(store))) from None


def _check_pulled_scope(store: Store, scope: Sequence[str], result: TransferResult) -> None:
    """After a pull: each scope item must have matched a task of the remote."""
    if not scope:
        return
    moved = _moved(result)
    nothing = not moved and result.up_to_date == 0
    for item in scope:
        covered = any(k == item or k.startswith(f"{item}/") for k in moved)
        if covered:
            continue
        try:
            store.heads_in(item)
            here = True
        except NotFoundError:
            here = False
        if nothing or not here:
            raise NotFoundError(
                f"the remote {result.remote} has no {'task' if '/' in item else 'spec'} "
                f"{item!r}" + _near_remote(store, item)
            )


def _moved(result: TransferResult) -> list[str]:
    return [u.task for u in [*result.updated, *result.merged]] + [r.task for r in result.refused]


def _near_remote(store: Store, item: str) -> str:
    found = close(item, _remote_names(store)) if "/" not in item else []
    return f" (did you mean the remote {found[0]!r}? REMOTE goes first)" if found else ""


@contextlib.contextmanager
def _remote_hint(store: Store, name: str | None) -> Iterator[None]:
    """A "no remote 'orign'" gains the nearest recorded remote's name."""
    try:
        yield
    except NotFoundError as e:
        known = _remote_names(store)
        found = close(name, known) if name and name not in known else []
        if not found:
            raise
        raise NotFoundError(with_hint(str(e), f"did you mean {found[0]!r}?")) from None


def _looks_scp(text: str) -> bool:
    head = text.split("/", 1)[0]
    return ":" in head and "@" in head


def _report(verb: str, result: TransferResult, as_json: bool) -> None:
    if as_json:
        emit_json({"command": verb, **result.to_dict()})
    else:
        rows = [[u.action, u.task, _short(u.old), _short(u.new), ""] for u in result.updated]
        rows += [
            ["merged", u.task, _short(u.old), _short(u.new), _conflicts(u.conflicts)]
            for u in result.merged
        ]
        rows += [["refused", r.task, "", "", r.reason] for r in result.refused]
        rows += [["alias", name, "", "", ""] for name in result.aliases]
        table(rows, header=("ACTION", "TASK", "OLD", "NEW", "NOTE"))
        say(
            f"{verb} {result.remote}: {len(result.updated)} updated, {len(result.merged)} merged, "
            f"{len(result.refused)} refused, {result.up_to_date} up to date; "
            f"{_plural(result.objects, 'object')}, {size(result.bytes)}"
        )
    if result.refused:
        parts = []
        for kind, why in (
            ("behind", "the remote has versions we lack: pull first"),
            ("rejected", "the remote refused the update: pull first"),
            ("secrets", "secret-shaped strings: mask them or use --allow-secrets"),
        ):
            tasks = [r.task for r in result.refused if r.kind == kind]
            if tasks:
                more = f" and {len(tasks) - 3} more" if len(tasks) > 3 else ""
                parts.append(f"{', '.join(tasks[:3])}{more} ({why})")
        raise PushRefusedError(
            f"refused {_plural(len(result.refused), 'task')}: {'; '.join(parts)}"
        )


def _short(commit: str | None) -> str:
    from .output import verbose

    if not commit:
        return "-"
    return commit if verbose() else commit[:12]


def _conflicts(names: Sequence[str]) -> str:
    return f"conflicts: {', '.join(names)}" if names else ""


@click.group()
def remote() -> None:
    """Add, list and remove the store's remotes.

    They are recorded in the store's git config (remote.NAME.url).
    """


@remote.command(name="add")
@click.argument("name", type=REMOTE)
@click.argument("url")
def remote_add(name: str, url: str) -> None:
    """Record a remote: NAME for URL.

    URL is a path, file://, ssh://, user@host:path, http(s):// or git://.
    """
    r = _lib().add_remote(open_store(), name, url)
    say(f"remote {r.name} -> {r.url}")


@remote.command(name="ls")
@json_option
def remote_ls(as_json: bool) -> None:
    """List the remotes."""
    found = _lib().remotes(open_store())
    if as_json:
        emit_json([r.to_dict() for r in found])
        return
    if not found:
        from .output import note

        note("no remotes: gitstore remote add NAME URL")
    table([[r.name, r.url] for r in found], header=("NAME", "URL"))


@remote.command(name="rm")
@click.argument("name", type=REMOTE)
def remote_rm(name: str) -> None:
    """Forget remote NAME (its tasks stay in the store)."""
    store = open_store()
    with _remote_hint(store, name):
        r = _lib().remove_remote(store, name)
    say(f"removed remote {r.name} ({r.url})")


@click.command()
@click.argument("url")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@ssh_key_option
@json_option
def clone(url: str, path: Path | None, ssh_key: Path | None, as_json: bool) -> None:
    """Make a new store with every task of URL (its origin).

    The store is made at PATH, else at --store.
    """
    ctx = click.get_current_context()
    target = path if path is not None else ctx.find_root().obj
    with _progress("clone", Path(target)) as progress:
        store, result = _lib().clone(url, target, progress=progress, ssh_key=_key(ssh_key))
    ctx.with_resource(store)
    if not as_json:
        say(f"cloned into {store.path}")
    _report("clone", result, as_json)


@click.command()
@click.argument("args", nargs=-1, metavar="[REMOTE] [SPEC[/TASK]...]", type=REMOTE_OR_SCOPE)
@allow_secrets_option
@ssh_key_option
@json_option
def push(args: tuple[str, ...], allow_secrets: bool, ssh_key: Path | None, as_json: bool) -> None:
    """Send tasks to a remote; never rewinds a remote task.

    REMOTE comes first (default origin); then SPECs or SPEC/TASKs (default all); a scope that
    matches no task here is not found (exit 4). A task the remote has versions of that we lack
    is refused ("pull first"), and so is one whose versions to send hold secret-shaped strings
    (unless --allow-secrets); the rest is pushed, and the command exits 10 naming what was
    refused.
    """
    store = open_store()
    name, scope = _split(store, args, "push")
    _check_local_scope(store, scope)
    with _remote_hint(store, name), _progress("push") as progress:
        result = _lib().push(
            store,
            name,
            scope,
            progress=progress,
            allow_secrets=allow_secrets,
            ssh_key=_key(ssh_key),
            on_total=progress.expect if progress is not None else None,
        )
    _report("push", result, as_json)


@click.command()
@click.argument("args", nargs=-1, metavar="[REMOTE] [SPEC[/TASK]...]", type=REMOTE_OR_SCOPE)
@ssh_key_option
@json_option
def pull(args: tuple[str, ...], ssh_key: Path | None, as_json: bool) -> None:
    """Bring a remote's tasks in: fast-forward, or merge.

    REMOTE comes first (default origin); then SPECs or SPEC/TASKs (default all); a scope that
    matches no task of the remote is not found (exit 4). Diverged tasks get a merge version,
    which lists the names both sides changed; the newer side kept them.
    """
    store = open_store(create=True)
    name, scope = _split(store, args, "pull")
    with _remote_hint(store, name), _progress("pull", store) as progress:
        result = _lib().pull(store, name, scope, progress=progress, ssh_key=_key(ssh_key))
    if scope and not _moved(result) and result.up_to_date == 0:
        _check_pulled_scope(store, scope, result)  # nothing matched: say so, not "0 up to date"
    _report("pull", result, as_json)
    _check_pulled_scope(store, scope, result)


@click.command()
@click.argument("name", required=False, metavar="[REMOTE]", type=REMOTE)
@allow_secrets_option
@ssh_key_option
@json_option
def sync(name: str | None, allow_secrets: bool, ssh_key: Path | None, as_json: bool) -> None:
    """Pull, then push, until both sides hold the same task refs."""
    store = open_store()
    with _remote_hint(store, name), _progress("sync", store) as progress:
        result = _lib().sync(
            store, name, progress=progress, allow_secrets=allow_secrets, ssh_key=_key(ssh_key)
        )
    _report("sync", result, as_json)


@click.group()
def bundle() -> None:
    """Carry tasks in a Git bundle file (git can read it too)."""


@bundle.command(name="create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("scope", nargs=-1, metavar="[SPEC[/TASK]...]")
@json_option
def bundle_create(file: Path, scope: tuple[str, ...], as_json: bool) -> None:
    """Write tasks and their history to a bundle FILE.

    All tasks, or those of each SPEC or SPEC/TASK given.
    """
    store = open_store()
    _check_local_scope(store, scope)
    with _progress("bundle"):
        result = _lib().bundle_create(store, file, scope)
    if as_json:
        emit_json({"command": "bundle create", **result.to_dict()})
        return
    say(
        f"bundled {_plural(len(result.updated), 'task')} into {file} "
        f"({_plural(result.objects, 'object')}, {size(result.bytes)})"
    )


@bundle.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def bundle_import(file: Path, as_json: bool) -> None:
    """Bring in the tasks of a bundle FILE.

    FILE was made by gitstore bundle create or git bundle create.
    """
    store = open_store(create=True)
    with _progress("bundle import", store) as progress:
        result = _lib().bundle_import(store, file, progress=progress)
    _report("bundle import", result, as_json)


def register(group: click.Group) -> None:
    """Add the commands between machines to the ``gitstore`` group."""
    for command in (remote, clone, push, pull, sync, bundle):
        group.add_command(command)
