"""Commands for agent runners' stores: ``gitstore scan``, ``find`` and ``rm-run``.

Thin, like ``gitstore.cli.main``: open the store, one library call, format the answer; errors
reach the one exit-code table in ``gitstore.cli.main`` because these commands run inside its group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gitstore import SecretsFoundError, UsageError

from .output import confirm, emit_json, note, open_store, say, table, verbose, when
from .params import key_values

if TYPE_CHECKING:
    pass

__all__ = ["COMMANDS", "find_command", "rm_run", "scan"]


def _asks() -> bool:
    """Whether a question can be asked: stdin and stderr are a terminal."""
    import sys

    from . import output

    return output.is_terminal(sys.stdin) and output.is_terminal(sys.stderr)


@click.command()
@click.argument("scope", required=False, metavar="[SPEC[/TASK]]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def scan(scope: str | None, as_json: bool) -> None:
    """Find secret-shaped strings already stored; exit 20 if any.

    Looks in every version: every blob in its tree, its message, run id, metadata, tags and
    commit.
    Prints one line per finding, SPEC/TASK@COMMIT WHERE: KIND (WHERE: NAME:LINE for an
    artifact's bytes, message, run_id, metadata.KEY, tag KEY on NAME ...); never the secret.
    """
    findings = open_store().scan(scope)
    if as_json:
        emit_json([f.to_dict() for f in findings])
    else:
        for f in findings:
            say(str(f))
    if findings:
        n = len(findings)
        raise SecretsFoundError(f"scan found {n} secret-shaped string{'' if n == 1 else 's'}")
    if not as_json:
        say("ok: no secrets found")


@click.command("find")
@click.option("--run", "run_id", metavar="RUN_ID", help="Versions written by this run.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    callback=key_values,
    metavar="KEY=VALUE",
    help="An artifact carries this tag (repeatable: one artifact carries them all).",
)
@click.option(
    "--type", "content_type", metavar="MIME", help="An artifact of this type (text/* a family)."
)
@click.option(
    "--task", "pattern", metavar="PATTERN", help="SPEC/TASK glob (fix-*/t?), or one SPEC."
)
@click.option("--since", metavar="TIME", help="Created at or after TIME (ISO 8601, UTC).")
@click.option("--until", metavar="TIME", help="Created before TIME (ISO 8601, UTC).")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many (newest).")
@click.option(
    "--latest", is_flag=True, help="Only each task's latest version (listed when it matches)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def find_command(
    run_id: str | None,
    tags: dict[str, str],
    content_type: str | None,
    pattern: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    latest: bool,
    as_json: bool,
) -> None:
    """Versions matching every condition given, newest first.

    Searches the whole store.

    --json: [VERSION, ...] with log --json's keys (spec and task among them).
    """
    from gitstore import find

    versions = find(
        open_store(),
        run=run_id,
        tags=tags or None,
        content_type=content_type,
        pattern=pattern,
        since=since,
        until=until,
        limit=limit,
        artifacts=False,  # neither output shows them: answer from the index alone
        latest=latest,
    )
    if as_json:
        emit_json([v.to_dict(artifacts=False) for v in versions])
        return
    if not versions:
        note("no version matches")
        return
    rows = []
    for v in versions:
        first = (v.message or "").strip().splitlines()
        rows.append(
            [
                f"{v.spec}/{v.task}@v{v.version}",
                v.commit if verbose() else v.commit[:12],
                when(v.created_at),
                v.run_id or "-",
                first[0] if first else "",
            ]
        )
    table(rows, header=("VERSION", "COMMIT", "CREATED", "RUN", "MESSAGE"))


@click.command("rm-run")
@click.argument("run_id", metavar="RUN_ID")
@click.option("--yes", is_flag=True, help="Really delete (without it: a dry run that only says).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def rm_run(run_id: str, yes: bool, as_json: bool) -> None:
    """Delete the tasks that one run wrote every version of.

    Says which tasks were kept and why. On a terminal it shows what it would delete and asks;
    elsewhere it needs --yes, and without it only says (a dry run). Deleted tasks' versions stay
    reachable by URI until gc prunes them.
    """
    if not run_id:
        raise UsageError("rm-run needs a RUN_ID")
    from gitstore import delete_run

    store = open_store()
    if not yes and not as_json and _asks():
        plan = delete_run(store, run_id, dry_run=True)
        for key in plan.deleted:
            say(f"would delete {key}")
        yes = bool(plan.deleted) and confirm(f"delete {len(plan.deleted)} task(s)?", False)
    result = delete_run(store, run_id, dry_run=not yes)
    if as_json:
        emit_json(result.to_dict())
        return
    verb = "deleted" if yes else "would delete"
    for key in result.deleted:
        say(f"{verb} {key}")
    for key, why in result.kept.items():
        say(f"kept {key}: {why}")
    if not result.deleted and not result.kept:
        say(f"run {run_id} wrote no version of any task")
    elif not yes:
        note("dry run: nothing deleted; add --yes to delete")


COMMANDS = [scan, find_command, rm_run]
