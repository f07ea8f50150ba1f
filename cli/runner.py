"""Commands for agent runners' stores: ``gitstore scan`` (and, as they come, find and log
--jsonl). Thin, like ``cli.main``: open the store, one library call, format the answer; errors
reach the one exit-code table in ``cli.main`` because these commands run inside its group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gitstore import SecretsFoundError, Store

__all__ = ["COMMANDS", "scan"]


def _open() -> Store:
    """The store chosen by ``gitstore --store`` (closed when the command ends); never created."""
    ctx = click.get_current_context()
    path: Path = ctx.find_root().obj
    return ctx.with_resource(Store.open(path))


@click.command()
@click.argument("scope", required=False, metavar="[SPEC[/TASK]]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def scan(scope: str | None, as_json: bool) -> None:
    """Find secret-shaped strings already stored, in every version; exit 20 if any.

    Prints one line per finding, SPEC/TASK@COMMIT NAME:LINE: KIND; never the secret.
    """
    findings = _open().scan(scope)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for f in findings:
            click.echo(str(f))
    if findings:
        n = len(findings)
        raise SecretsFoundError(f"scan found {n} secret-shaped string{'' if n == 1 else 's'}")
    if not as_json:
        click.echo("ok: no secrets found")


COMMANDS = [scan]
