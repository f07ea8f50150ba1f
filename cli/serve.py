"""``gitstore serve`` and ``gitstore token``: the store as an HTTP service, and who may use it.

Thin, like ``cli.main``: the app is :func:`gitstore.server.create_app`, tokens are
:class:`gitstore.Tokens`; this module only checks the options, says how the server is reachable
and runs uvicorn. Errors reach the one exit-code table in ``cli.main``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import resource
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitstore import UsageError

from .output import say

if TYPE_CHECKING:
    # Imported when a command runs: `gitstore --help` loads neither the store nor dulwich.
    from gitstore import Store

__all__ = ["COMMANDS", "serve", "token"]

SERVER_PACKAGES = (
    "starlette",
    "uvicorn",
    "python_multipart",
    "anyio",
    "a2wsgi",
    "jinja2",
    "pygments",
)
INSTALL_HINT = "gitstore serve needs the server extra: pip install 'gitstore-artifacts[server]'"


def _store(create: bool = False) -> Store:
    """The store chosen by ``gitstore --store`` (closed when the command ends)."""
    from gitstore import Store

    ctx = click.get_current_context()
    path: Path = ctx.find_root().obj
    return ctx.with_resource(Store.open(path, create=create))


def is_loopback(host: str) -> bool:
    """True if ``host`` is a loopback address or ``localhost`` (reachable from this machine)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Without tokens, a non-loopback address needs --public-read.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--max-upload",
    default="10G",
    show_default=True,
    metavar="SIZE",
    help="Largest request body, in bytes or with K, M, G, T (binary units); larger is 413.",
)
@click.option(
    "--public-read",
    is_flag=True,
    help="Let reads through without a token (writes still need one).",
)
@click.option(
    "--jobs-spec",
    default="jobs",
    show_default=True,
    metavar="SPEC",
    help="The spec whose tasks are the jobs of the agent-job routes (/api/queue/...).",
)
def serve(host: str, port: int, max_upload: str, public_read: bool, jobs_spec: str) -> None:
    """Serve the store over HTTP: the REST API under /api/v1, the agent-job routes, and a
    read-only web page for people under /ui.

    Requests carry a token (gitstore token add) as 'Authorization: Bearer TOKEN'. A store with
    no token is served to everyone who can reach it, so only on loopback; elsewhere it needs
    tokens, or --public-read for a read-only server.
    """
    missing = [p for p in SERVER_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise UsageError(INSTALL_HINT)
    import uvicorn

    from gitstore.server import ServerConfig, create_app, parse_size

    try:
        limit = parse_size(max_upload)
    except UsageError as e:
        raise UsageError(f"--max-upload: {e}") from None
    if limit < 1:
        raise UsageError("--max-upload must be at least 1 byte")
    store = _store(create=True)
    from gitstore import Tokens

    tokens = Tokens(store.path)
    loopback = is_loopback(host)
    if not tokens and not loopback and not public_read:
        raise UsageError(
            f"refusing to serve {host} without tokens: anyone who reaches it could write "
            "(make one with 'gitstore token add NAME --scope write', or add --public-read to "
            "serve reads only)"
        )
    config = ServerConfig(
        max_upload=limit,
        public_read=public_read,
        open_without_tokens=loopback,
        jobs_spec=jobs_spec,
    )
    app = create_app(store, config)
    sock = _listen(host, port)
    _raise_file_limit()
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    say(f"gitstore: serving {store.path} at http://{shown}:{bound}/")
    say(f"gitstore: the web page is http://{shown}:{bound}/ui/")
    if tokens:
        rule = "reads need no token; writes need one" if public_read else "every request needs one"
        say(f"gitstore: {len(tokens.all())} token(s); {rule}")
    elif loopback:
        say("gitstore: no tokens: anyone on this machine can read and write (loopback only)")
    else:
        say("gitstore: no tokens: anyone can read, nobody can write (--public-read)")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", timeout_keep_alive=30, server_header=False)
    )
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that --port 0 can say which port it got."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
        # when it is, and without it every small response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def _raise_file_limit() -> None:
    # A multipart upload holds one temp file per part (up to 1,000) while it is read.
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@click.group()
def token() -> None:
    """Make, list and remove the tokens that gitstore serve asks for."""


@token.command("add")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "write", "admin"]),
    default="read",
    show_default=True,
    help="read < write (puts, uploads, rm) < admin (delete tasks).",
)
@click.option(
    "--spec", "pattern", metavar="PATTERN", help="Limit the token to specs matching this glob."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def token_add(name: str, scope: str, pattern: str | None, as_json: bool) -> None:
    """Make token NAME and print it: the only time it is shown (the store keeps its hash)."""
    from gitstore import Tokens

    info, secret = Tokens(_store().path).add(name, scope=scope, spec=pattern)
    if as_json:
        click.echo(json.dumps({**info.to_dict(), "token": secret}, indent=2))
        return
    click.echo(secret)
    say("gitstore: keep this token now; it is not shown again", err=True)


@token.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def token_ls(as_json: bool) -> None:
    """List tokens: name, scope, spec pattern, created (never the secrets)."""
    from gitstore import Tokens

    tokens = Tokens(_store().path).all()
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in tokens], indent=2))
        return
    for t in tokens:
        say(f"{t.name}  {t.scope}  {t.spec or '*'}  {t.created_at[:19]}Z")


@token.command("rm")
@click.argument("name")
def token_rm(name: str) -> None:
    """Remove token NAME: requests carrying it are refused from the next one on."""
    from gitstore import Tokens

    Tokens(_store().path).remove(name)
    say(f"removed token {name}")


COMMANDS = [serve, token]
