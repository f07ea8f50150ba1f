"""``gitstore du``: where the store's bytes are, on disk and logical, in human units or JSON.

Thin, like ``cli.main``: the figures are :meth:`gitstore.Store.du`'s; this module lays them
out. Errors reach the one exit-code table in ``cli.main``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from gitstore import human_bytes

from .output import emit_json, open_store, printable, say

if TYPE_CHECKING:
    from gitstore import UsagePart

__all__ = ["COMMANDS", "du"]


@click.command()
@click.argument("scope", required=False, metavar="[SPEC[/TASK]]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def du(scope: str | None, as_json: bool) -> None:
    """Bytes on disk and logical bytes, per spec, task and content type.

    Every object is counted once: a packed object by its compressed entry in the pack, a loose
    one by its file; an artifact several tasks share counts for the first of them in SPEC/TASK
    order. The whole store's total is every file under objects/, including what no ref
    reaches (gc frees it once past the grace period). Lists specs for the store, tasks for a
    spec, content types always; --json has them all, with a "total" in bytes.
    """
    usage = open_store().du(scope)
    if as_json:
        emit_json(usage.to_dict())
        return
    where = scope or "the store"
    say(f"{where}: {human_bytes(usage.total)} on disk, {human_bytes(usage.logical)} logical")
    if scope is None:
        say(f"  unreachable: {human_bytes(usage.unreachable)} (gitstore gc frees it)")
        say(f"  other:       {human_bytes(usage.other)} (pack indexes, second copies, temp files)")
        _rows("SPEC", usage.specs)
    elif "/" not in scope:
        _rows("TASK", usage.tasks)
    _rows("TYPE", usage.types)


def _rows(title: str, parts: Sequence[UsagePart]) -> None:
    if not parts:
        return
    rows = [
        (printable(p.name), human_bytes(p.disk), human_bytes(p.logical), str(p.objects))
        for p in sorted(parts, key=lambda p: (-p.disk, p.name))
    ]
    head = (title, "ON DISK", "LOGICAL", "OBJECTS")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    say("")
    for row in [head, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        click.echo("  ".join(cells).rstrip())


COMMANDS = [du]
