"""Option parsers shared by the command modules."""

from __future__ import annotations

from collections.abc import Sequence

import click


def key_values(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options into a dict (a later KEY wins)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
        out[key] = value
    return out
