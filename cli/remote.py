"""``gitstore remote|clone|push|pull|sync|bundle``: thin commands over :mod:`gitstore.remote`.

Each command opens the store, makes one library call and prints a summary (or, with ``--json``,
the transfer's summary document). A push that refused tasks prints what it did, then exits with
:class:`~gitstore.PushRefusedError`'s code naming the refused tasks.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitstore import PushRefusedError

from .output import printable, say

if TYPE_CHECKING:
    from types import ModuleType

    from gitstore import Store
    from gitstore.remote import Progress, TransferResult

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


def _open(*, create: bool = False) -> Store:
    """The store chosen by ``--store`` (closed when the command ends)."""
    from gitstore import Store

    ctx = click.get_current_context()
    path: Path = ctx.obj
    return ctx.with_resource(Store.open(path, create=create))


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _lib() -> ModuleType:
    """gitstore.remote, imported when a command runs: it loads dulwich's network clients
    (urllib3 ...), which every other command would otherwise pay for at startup."""
    import gitstore.remote

    return gitstore.remote


def _progress() -> Progress | None:
    """Transfer progress on stderr when it is a terminal; nothing when piped."""
    if not sys.stderr.isatty():
        return None
    ctx = click.get_current_context()

    def show(line: str) -> None:
        # Counters ("Receiving objects: 42% ...") redraw one line; the last state stays.
        # The line is the remote's text: escaped, so only our own \r and erase-line remain.
        click.echo(f"\r{printable(line)}\x1b[K", err=True, nl=False)
        ctx.meta[_DRAWN] = True

    ctx.call_on_close(_end_progress)
    return show


_DRAWN = "gitstore.remote.progress-drawn"


def _end_progress() -> None:
    """End the progress line, so what follows starts on a line of its own."""
    ctx = click.get_current_context()
    if ctx.meta.pop(_DRAWN, False):
        click.echo("", err=True)


def _split(store: Store, args: Sequence[str]) -> tuple[str | None, list[str]]:
    """``[REMOTE] [SPEC[/TASK]...]``: the first argument is a remote if it names one.

    It names one when it is a recorded remote, a URL, ``user@host:path``, an existing path, or
    looks like a path (``/``, ``.`` or ``~`` first, ``.git`` last); otherwise every argument is a
    spec or task and the remote is ``origin``.
    """
    if not args:
        return None, []
    first = args[0]
    known = {r.name for r in _lib().remotes(store)}
    pathlike = first.startswith(("/", ".", "~")) or first.endswith((".git", ".bundle"))
    if first in known or "://" in first or pathlike or os.path.exists(first) or _looks_scp(first):
        return first, list(args[1:])
    return None, list(args)


def _looks_scp(text: str) -> bool:
    head = text.split("/", 1)[0]
    return ":" in head and "@" in head


def _report(verb: str, result: TransferResult, as_json: bool) -> None:
    _end_progress()
    if as_json:
        _emit_json({"command": verb, **result.to_dict()})
    else:
        for u in result.updated:
            say(f"{u.action:<12} {u.task}  {_short(u.old)} -> {_short(u.new)}")
        for u in result.merged:
            note = f"  conflicts: {', '.join(u.conflicts)}" if u.conflicts else ""
            say(f"{'merged':<12} {u.task}  -> {_short(u.new)}{note}")
        for r in result.refused:
            say(f"{'refused':<12} {r.task}  {r.reason}")
        for name in result.aliases:
            say(f"{'alias':<12} {name}")
        say(
            f"{verb} {result.remote}: {len(result.updated)} updated, {len(result.merged)} merged, "
            f"{len(result.refused)} refused, {result.up_to_date} up to date; "
            f"{_plural(result.objects, 'object')}, {_plural(result.bytes, 'byte')}"
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
    return commit[:12] if commit else "-"


@click.group()
def remote() -> None:
    """Remotes of the store, recorded in its git config (remote.NAME.url)."""


@remote.command(name="add")
@click.argument("name")
@click.argument("url")
def remote_add(name: str, url: str) -> None:
    """Record remote NAME at URL (a path, file://, ssh://, user@host:path, http(s)://, git://)."""
    r = _lib().add_remote(_open(), name, url)
    say(f"remote {r.name} -> {r.url}")


@remote.command(name="ls")
@json_option
def remote_ls(as_json: bool) -> None:
    """List the remotes."""
    found = _lib().remotes(_open())
    if as_json:
        _emit_json([r.to_dict() for r in found])
        return
    for r in found:
        say(f"{r.name}  {r.url}")


@remote.command(name="rm")
@click.argument("name")
def remote_rm(name: str) -> None:
    """Forget remote NAME (its tasks stay in the store)."""
    r = _lib().remove_remote(_open(), name)
    say(f"removed remote {r.name} ({r.url})")


@click.command()
@click.argument("url")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@ssh_key_option
@json_option
def clone(url: str, path: Path | None, ssh_key: Path | None, as_json: bool) -> None:
    """A new store at PATH (default: --store) with every task of URL; URL becomes origin."""
    ctx = click.get_current_context()
    target = path if path is not None else ctx.obj
    store, result = _lib().clone(url, target, progress=_progress(), ssh_key=_key(ssh_key))
    ctx.with_resource(store)
    if not as_json:
        say(f"cloned into {store.path}")
    _report("clone", result, as_json)


@click.command()
@click.argument("args", nargs=-1, metavar="[REMOTE] [SPEC[/TASK]...]")
@allow_secrets_option
@ssh_key_option
@json_option
def push(args: tuple[str, ...], allow_secrets: bool, ssh_key: Path | None, as_json: bool) -> None:
    """Send task refs to REMOTE (default origin); never rewinds a remote task.

    A task the remote has versions of that we lack is refused ("pull first"), and so is one whose
    versions to send hold secret-shaped strings (unless --allow-secrets); the rest is pushed, and
    the command exits 10 naming what was refused.
    """
    store = _open()
    name, scope = _split(store, args)
    result = _lib().push(
        store,
        name,
        scope,
        progress=_progress(),
        allow_secrets=allow_secrets,
        ssh_key=_key(ssh_key),
    )
    _report("push", result, as_json)


@click.command()
@click.argument("args", nargs=-1, metavar="[REMOTE] [SPEC[/TASK]...]")
@ssh_key_option
@json_option
def pull(args: tuple[str, ...], ssh_key: Path | None, as_json: bool) -> None:
    """Bring REMOTE's task refs in (default origin): fast-forward, or merge diverged tasks.

    A merge lists the names both sides changed; the newer side kept them.
    """
    store = _open(create=True)
    name, scope = _split(store, args)
    result = _lib().pull(store, name, scope, progress=_progress(), ssh_key=_key(ssh_key))
    _report("pull", result, as_json)


@click.command()
@click.argument("name", required=False, metavar="[REMOTE]")
@allow_secrets_option
@ssh_key_option
@json_option
def sync(name: str | None, allow_secrets: bool, ssh_key: Path | None, as_json: bool) -> None:
    """Pull, then push, until both sides hold the same task refs."""
    store = _open()
    result = _lib().sync(
        store, name, progress=_progress(), allow_secrets=allow_secrets, ssh_key=_key(ssh_key)
    )
    _report("sync", result, as_json)


@click.group()
def bundle() -> None:
    """Carry tasks as a Git bundle file (readable by git bundle verify and git fetch)."""


@bundle.command(name="create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("scope", nargs=-1, metavar="[SPEC[/TASK]...]")
@json_option
def bundle_create(file: Path, scope: tuple[str, ...], as_json: bool) -> None:
    """Write the tasks (all, or SPEC[/TASK]...) and their history to FILE."""
    result = _lib().bundle_create(_open(), file, scope)
    if as_json:
        _emit_json({"command": "bundle create", **result.to_dict()})
        return
    say(
        f"bundled {_plural(len(result.updated), 'task')} into {file} "
        f"({_plural(result.objects, 'object')}, {_plural(result.bytes, 'byte')})"
    )


@bundle.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def bundle_import(file: Path, as_json: bool) -> None:
    """Bring in the tasks of bundle FILE (made by gitstore or git bundle create)."""
    store = _open(create=True)
    _report("bundle import", _lib().bundle_import(store, file, progress=_progress()), as_json)


def register(group: click.Group) -> None:
    """Add the commands between machines to the ``gitstore`` group."""
    for command in (remote, clone, push, pull, sync, bundle):
        group.add_command(command)
