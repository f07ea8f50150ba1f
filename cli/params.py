"""Option parsers and argument types shared by the command modules.

The argument types complete from the store (``gitstore completion``): :data:`TASK_ADDRESS` offers
specs, then the tasks of the spec typed; :data:`ARTIFACT` the artifact names of the version named
by the command's address; :data:`REMOTE_OR_SCOPE` remotes as well as specs and tasks. Completion
never creates a store and never fails: a store that cannot be read completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    from gitstore import Store

__all__ = ["ARTIFACT", "REMOTE", "REMOTE_OR_SCOPE", "TASK_ADDRESS", "key_values"]


def key_values(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options into a dict (a later KEY wins)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
        out[key] = value
    return out


def _store_for_completion(ctx: click.Context) -> Store | None:
    """The store the command line names (--store, $GITSTORE_DIR, ~/.gitstore), if it opens."""
    from gitstore import GitstoreError, Store

    root = ctx.find_root()
    location = root.params.get("store_path") or os.environ.get("GITSTORE_DIR")
    if location and "://" in str(location):
        return None  # a served store: completing would make a request per key press
    path = Path(location).expanduser() if location else Path.home() / ".gitstore"
    try:
        return Store.open(path)
    except (GitstoreError, OSError):
        return None


def _scope_items(store: Store, incomplete: str) -> Iterator[CompletionItem]:
    if "/" not in incomplete:
        for spec in store.specs():
            if spec.startswith(incomplete):
                yield CompletionItem(f"{spec}/", help="spec")
        return
    spec = incomplete.split("/", 1)[0]
    if spec in store.specs():
        for task in store.tasks(spec):
            if f"{spec}/{task}".startswith(incomplete):
                yield CompletionItem(f"{spec}/{task}", help="task")


class TaskAddress(click.ParamType[str, str]):
    """``SPEC[/TASK[@REV]]`` (or a URI), completed from the store's specs and tasks."""

    name = "address"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        store = _store_for_completion(ctx)
        if store is None:
            return []
        with store:
            return _safely(lambda: list(_scope_items(store, incomplete)))


class ArtifactName(click.ParamType[str, str]):
    """An artifact name, completed from the version named by the command's address."""

    name = "artifact"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        address = next(
            (v for k, v in ctx.params.items() if k in ("address", "target") and isinstance(v, str)),
            None,
        )
        store = _store_for_completion(ctx)
        if store is None or address is None or address.startswith("gitstore://"):
            return []
        with store:
            return _safely(
                lambda: [
                    CompletionItem(a.name)
                    for a in store.show(address).artifacts
                    if a.name.startswith(incomplete)
                ]
            )


class RemoteName(click.ParamType[str, str]):
    """A remote of the store, completed from its git config."""

    name = "remote"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        store = _store_for_completion(ctx)
        if store is None:
            return []
        with store:
            return _safely(lambda: list(_remote_items(store, incomplete)))


def _remote_items(store: Store, incomplete: str) -> Iterator[CompletionItem]:
    from gitstore import remotes

    for r in remotes(store):
        if r.name.startswith(incomplete):
            yield CompletionItem(r.name, help="remote")


class RemoteOrScope(click.ParamType[str, str]):
    """push/pull's ``[REMOTE] [SPEC[/TASK]...]``: remotes first, then specs and tasks."""

    name = "remote_or_scope"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        store = _store_for_completion(ctx)
        if store is None:
            return []
        given = ctx.params.get(param.name or "") or ()
        with store:
            remote = [] if given else _safely(lambda: list(_remote_items(store, incomplete)))
            return remote + _safely(lambda: list(_scope_items(store, incomplete)))


def _safely(make: Any) -> list[CompletionItem]:
    """Completion must never print a traceback into the user's shell."""
    from gitstore import GitstoreError

    try:
        result: list[CompletionItem] = make()
    except (GitstoreError, OSError):
        return []
    return result


TASK_ADDRESS = TaskAddress()
ARTIFACT = ArtifactName()
REMOTE = RemoteName()
REMOTE_OR_SCOPE = RemoteOrScope()
