"""``gitstore alias``: names for versions, and the history's shape drawn for ``log``.

``gitstore alias SPEC/TASK[@REV] NAME`` sets (or moves) an alias, ``gitstore alias rm SPEC/TASK
NAME`` removes one, ``gitstore alias ls [SPEC[/TASK]]`` lists them; each is one call of the
library (:meth:`gitstore.Store.alias`, ``unalias``, ``aliases``). :func:`graph` draws the
lanes ``gitstore log`` shows beside a history that holds merges, like ``git log --graph``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from .output import emit_json, open_store, printable, say

if TYPE_CHECKING:
    from gitstore import Alias

__all__ = ["alias", "graph"]


def _line(a: Alias) -> str:
    return f"{a.spec}/{a.task}@{a.name} -> v{a.version} {a.commit[:12]}"


class _AliasGroup(click.Group):
    """``alias`` with subcommands ``rm`` and ``ls``; anything else is ``alias ADDRESS NAME``.

    An address always holds a ``/``, so it can never be taken for a subcommand's name.
    """

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "set", _set, args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "SPEC/TASK[@REV] NAME [--json] | rm | ls")


@click.group("alias", cls=_AliasGroup)
def alias() -> None:
    """Name versions: `alias SPEC/TASK[@REV] NAME` sets or moves NAME (then SPEC/TASK@NAME
    resolves to that version); `alias rm SPEC/TASK NAME` removes it; `alias ls` lists them.

    NAME may not read as a revision: not vN, not only hex digits, not HEAD or latest. Aliases
    travel with push, pull and bundles; when two stores set one differently, the later setting
    wins. An aliased version is never dropped by retention.
    """


@click.command("set", hidden=True)
@click.argument("address", metavar="SPEC/TASK[@REV]")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def _set(address: str, name: str, as_json: bool) -> None:
    """Point alias NAME of SPEC/TASK at version REV (the latest when none is given)."""
    a = open_store().alias(address, name)
    if as_json:
        emit_json(a.to_dict())
    else:
        say(_line(a))


@alias.command("rm")
@click.argument("address", metavar="SPEC/TASK")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def _rm(address: str, name: str, as_json: bool) -> None:
    """Remove alias NAME of SPEC/TASK (the version stays); exit 4 if there is none."""
    a = open_store().unalias(address, name)
    if as_json:
        emit_json({**a.to_dict(), "removed": True})
    else:
        say(f"removed {a.spec}/{a.task}@{a.name} (was v{a.version} {a.commit[:12]})")


@alias.command("ls")
@click.argument("scope", required=False, metavar="[SPEC[/TASK]]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def _ls(scope: str | None, as_json: bool) -> None:
    """List aliases: of the whole store, of SPEC, or of SPEC/TASK."""
    found = open_store().aliases(scope)
    if as_json:
        emit_json([a.to_dict() for a in found])
        return
    rows = [
        [f"{a.spec}/{a.task}@{a.name}", f"v{a.version}", a.commit[:12], a.set_at] for a in found
    ]
    rows = [[printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else []
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# -- the history's shape ----------------------------------------------------------------------


def graph(history: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, int | None]]:
    """Lanes for a history listed newest first (``(commit, parents)``, children before their
    parents, as version numbers order them): one ``(prefix, index)`` per version, plus
    ``(prefix, None)`` connector lines where a merge opens a lane (``|\\``) or two lanes meet
    again at a common version (``|/``). A parent the listing does not hold (cut by ``-n``)
    ends its lane.
    """
    listed = {c for c, _ in history}
    lanes: list[str] = []
    out: list[tuple[str, int | None]] = []
    for i, (commit, parents) in enumerate(history):
        if commit not in lanes:
            lanes.append(commit)
        col = lanes.index(commit)
        # Other lanes that were waiting for this version (both sides of a merge came from it)
        # join this one first, as git draws it.
        for j in sorted((j for j, c in enumerate(lanes) if c == commit and j != col), reverse=True):
            out.append((_join_line(len(lanes), j), None))
            del lanes[j]
        out.append((" ".join("*" if j == col else "|" for j in range(len(lanes))), i))
        nexts = [p for p in parents if p in listed]
        if not nexts:
            del lanes[col]
            continue
        lanes[col] = nexts[0]
        at = col + 1
        for p in nexts[1:]:
            if p in lanes:
                continue
            lanes.insert(at, p)
            out.append((_fork_line(len(lanes), at), None))
            at += 1
    width = max((len(p) for p, _ in out), default=0)
    return [(p.ljust(width), i) for p, i in out]


def _fork_line(count: int, new: int) -> str:
    """``|\\``: lane ``new`` opens to the right of its left neighbour (lanes after it shift)."""
    chars = [" "] * (2 * count - 1)
    for j in range(count):
        if j < new:
            chars[2 * j] = "|"
        else:
            chars[2 * j - 1] = "\\"
    return "".join(chars).rstrip()


def _join_line(count: int, gone: int) -> str:
    """``|/``: lane ``gone`` joins its left neighbour (lanes after it shift left)."""
    chars = [" "] * (2 * count - 1)
    for j in range(count):
        if j < gone:
            chars[2 * j] = "|"
        else:
            chars[2 * j - 1] = "/"
    return "".join(chars).rstrip()


def register(group: click.Group) -> None:
    """Add ``alias`` to the ``gitstore`` group."""
    group.add_command(alias)
