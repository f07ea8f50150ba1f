"""``gitstore purge``: replace leaked bytes by a tombstone everywhere, a dry run unless ``--yes``.

Thin, like ``gitstore.cli.main``: open the store, one library call (:meth:`gitstore.Store.purge`),
format the answer; errors reach the one exit-code table in ``gitstore.cli.main``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gitstore import UsageError

from .output import emit_json, open_store, say

if TYPE_CHECKING:
    from gitstore import PurgeReport

__all__ = ["COMMANDS", "purge"]


@click.command()
@click.argument("target", required=False, metavar="[SPEC/TASK[@REV] NAME]")
@click.argument("name", required=False)
@click.option("--blob", metavar="OID", help="The bytes to purge, by blob id.")
@click.option("--sha256", "sha256", metavar="HEX", help="The bytes to purge, by sha256.")
@click.option(
    "--replace-with",
    metavar="TEXT",
    help="The tombstone's text (default: what was purged, when and why).",
)
@click.option("--reason", default="", metavar="TEXT", help="Why, recorded with the purge.")
@click.option("--yes", is_flag=True, help="Purge (without it: print what would happen).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def purge(
    target: str | None,
    name: str | None,
    blob: str | None,
    sha256: str | None,
    replace_with: str | None,
    reason: str,
    yes: bool,
    as_json: bool,
) -> None:
    """Replace bytes that must not be kept (a leaked secret) by a tombstone, everywhere.

    Name the bytes by an artifact (SPEC/TASK[@REV] NAME), --blob OID or --sha256 HEX. Every
    version of every task holding them is rewritten with a tombstone in their place (numbers
    and metadata stay; each manifest records the purge), the old objects are removed at once,
    and the purge is recorded in refs/gitstore/purges so that push, pull and bundles carry it:
    a store that syncs with this one purges its own copies. Without --yes, prints the plan.

    Copies elsewhere (remotes not synced since, clones, backups) still hold the bytes: rotate
    the secret.
    """
    if target is not None and name is None and not target.startswith("gitstore://"):
        raise UsageError(f"{target}: which artifact? (give a name, --blob or --sha256)")
    store = open_store()
    report = store.purge(
        target,
        name,
        blob=blob,
        sha256=sha256,
        replace_with=replace_with,
        why=reason,
        apply=yes,
    )
    from gitstore import remotes

    elsewhere = [f"{r.name} ({r.url})" for r in remotes(store)]
    if as_json:
        doc = report.to_dict()
        doc["remotes"] = [r.name for r in remotes(store)]
        emit_json(doc)
        return
    _print(report, elsewhere)


def _print(report: PurgeReport, elsewhere: list[str]) -> None:
    verb = "purged" if report.applied else "would purge"
    say(f"{verb} blob {report.oid} ({report.size} bytes, sha256 {report.sha256})")
    for h in report.held_by:
        say(f"  {h.spec}/{h.task}@v{h.version} {', '.join(h.names)}")
    if report.applied:
        say(
            f"{report.rewritten} version(s) rewritten, {report.expunged} object(s) removed, "
            f"{report.bytes_freed} bytes freed; recorded in refs/gitstore/purges"
        )
    else:
        say("dry run: nothing changed; purge with --yes")
    if elsewhere:
        say("remotes that may still hold copies (they purge theirs when they sync with this):")
        for r in elsewhere:
            say(f"  {r}")
    say("the bytes may have been copied elsewhere too: rotate the secret")


COMMANDS = [purge]
