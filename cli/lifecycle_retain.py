"""``gitstore retain``: keep rules applied to versions, a dry run unless ``--yes``.

Thin, like ``gitstore.cli.main``: open the store, one library call (:meth:`gitstore.Store.retain`),
format the plan; errors reach the one exit-code table because the command runs inside its group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .output import emit_json, io_progress, open_store, say, size, when

if TYPE_CHECKING:
    from gitstore import RetainPlan, TaskPlan

__all__ = ["COMMANDS", "retain"]


@click.command()
@click.argument("scope", nargs=-1, metavar="[SPEC[/TASK]...]")
@click.option("--keep-last", type=click.IntRange(min=1), metavar="N", help="Keep the N newest.")
@click.option(
    "--keep-within",
    metavar="DURATION",
    help="Keep versions younger than this: 12h, 7d, 2w, 6m (months), 1y, or 1y6m.",
)
@click.option(
    "--keep-daily",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the newest version of each of the last N days that have versions (UTC).",
)
@click.option(
    "--keep-weekly",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the newest version of each of the last N ISO weeks that have versions.",
)
@click.option(
    "--keep-monthly",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the newest version of each of the last N months that have versions.",
)
@click.option(
    "--keep-tag",
    "keep_tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keep versions with an artifact tagged so, or metadata KEY equal to VALUE (repeatable).",
)
@click.option(
    "--type",
    "content_type",
    metavar="MIME",
    help="The rules drop artifacts of this type (text/x-log, text/*) instead of versions.",
)
@click.option(
    "--min-copies",
    type=click.IntRange(min=0),
    metavar="N",
    help="Never drop a version known to be on fewer than N remotes (default: config, else 0).",
)
@click.option("--force", is_flag=True, help="Drop versions even when --min-copies would keep them.")
@click.option("--yes", is_flag=True, help="Apply the plan (without it: print it, change nothing).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def retain(
    scope: tuple[str, ...],
    keep_last: int | None,
    keep_within: str | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    keep_tags: tuple[str, ...],
    content_type: str | None,
    min_copies: int | None,
    force: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Drop old versions (and old artifacts of a type) by keep rules; a dry run unless --yes.

    A version stays when ANY rule keeps it; the latest version of each task and versions with
    an alias always stay. Without rules, the store's policy applies: [gitstore "retain"],
    [gitstore "retain.spec.SPEC"] and [gitstore "retain.type.MIME"] in its git config, so
    that a cron line 'gitstore retain --yes' keeps a store in shape. Freed bytes leave the disk
    with the next gc.

    \b
    Examples:
      gitstore retain --keep-last 5 --keep-daily 7          # what would go
      gitstore retain nightly --keep-within 30d --yes        # drop them
      gitstore retain --type text/x-log --keep-within 7d     # logs older than a week
    """
    store = open_store()
    # Planning reads every version in scope and applying writes their new heads: on a terminal
    # the elapsed time, bytes read and written show it working (there is no total to know).
    with io_progress("retain" if yes else "retain (planning)"):
        plan = store.retain(
            scope,
            keep_last=keep_last,
            keep_within=keep_within,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_tags=keep_tags,
            content_type=content_type,
            min_copies=min_copies,
            force=force,
            apply=yes,
        )
    if as_json:
        emit_json(plan.to_dict())
        return
    for task in plan.tasks:
        _print_task(task)
    _print_summary(plan)


def _print_task(task: TaskPlan) -> None:
    state = ""
    if task.skipped:
        state = f"  (left as it was: {task.skipped})"
    elif task.new_head:
        state = f"  (now {task.new_head[:12]})"
    say(f"{task.spec}/{task.task}{state}")
    for v in task.versions:
        what = "keep" if v.keep else "drop"
        why = ", ".join(v.reasons)
        say(f"  {what} v{v.number}  {v.commit[:12]}  {when(v.time)}  {why}".rstrip())
        for e in v.expire:
            say(f"    expire {e.name} ({size(e.size)}, {e.content_type})  {e.rule}")


def _print_summary(plan: RetainPlan) -> None:
    verb = "dropped" if plan.applied else "would drop"
    parts = [f"{verb} {_n(plan.dropped, 'version')}"]
    if plan.expired:
        parts.append(f"expire{'d' if plan.applied else ''} {_n(plan.expired, 'artifact')}")
    parts.append(f"kept {_n(plan.kept, 'version')}")
    skipped = sum(1 for t in plan.tasks if t.skipped)
    if skipped:
        parts.append(f"left {_n(skipped, 'task')} that changed meanwhile")
    freed = size(plan.bytes_freed) + (" freed by the next gc" if plan.applied else " to free")
    tail = "" if plan.applied or not (plan.dropped or plan.expired) else "; --yes applies it"
    say(f"{'; '.join(parts)}; {freed}{tail}")


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


COMMANDS = [retain]
