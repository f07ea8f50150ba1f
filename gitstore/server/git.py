"""Git smart HTTP on the service's port: its base URL is an ordinary Git remote.

The three endpoints Git's smart HTTP protocol uses (``GET /info/refs?service=...``,
``POST /git-upload-pack``, ``POST /git-receive-pack``) go to :func:`gitstore.git_http_app`
(dulwich's smart-HTTP server with gitstore's push rules) through a2wsgi, after the same token
check as the REST API: fetching needs ``read``, pushing ``write``, and a token limited to some
specs may push only tasks of those specs. Git clients send the token as the password of HTTP
basic auth (any user name), so a refusal carries a ``Basic`` challenge that makes git ask its
credential helpers.

a2wsgi streams the request body to the WSGI side (Starlette's old WSGIMiddleware and others
buffer it whole), and runs the WSGI app in its own threads, so a push never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gitstore import GIT_MAY_WRITE, GitstoreError, Store, git_http_app
from gitstore.server.auth import Access
from gitstore.server.errors import AuthRequiredError, status_of

__all__ = ["git_routes"]

# Where Git's smart HTTP protocol goes: the advertisement, then one POST per service.
PATHS = ("/info/refs", "/git-upload-pack", "/git-receive-pack")


class _GitEndpoint:
    """An ASGI endpoint: the token check, then the WSGI Git app."""

    def __init__(self, store: Store, access: Access) -> None:
        self.access = access
        wsgi = git_http_app(store)

        def with_spec_rule(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
            # The rule the token check put in the ASGI scope, handed on to the Git app.
            environ[GIT_MAY_WRITE] = environ["asgi.scope"].get(GIT_MAY_WRITE)
            return wsgi(environ, start)

        self.app = WSGIMiddleware(with_spec_rule)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        pushing = (
            request.url.path.endswith("/git-receive-pack")
            or request.query_params.get("service") == "git-receive-pack"
        )
        try:
            token = self.access.authorize(request.headers, "write" if pushing else "read")
        except GitstoreError as e:
            headers = {"WWW-Authenticate": 'Basic realm="gitstore"'}
            if not isinstance(e, AuthRequiredError):
                headers = {}
            response = PlainTextResponse(f"{e}\n", status_code=status_of(e), headers=headers)
            await response(scope, receive, send)
            return
        scope = dict(scope)
        scope[GIT_MAY_WRITE] = token.covers if token is not None else None
        await self.app(scope, receive, send)  # type: ignore[arg-type]  # a2wsgi's own ASGI types


def git_routes(store: Store, access: Access) -> list[BaseRoute]:
    """The routes that serve ``store`` to Git clients at the service's base URL."""
    endpoint = _GitEndpoint(store, access)
    return [
        Route(PATHS[0], endpoint, methods=["GET"]),
        Route(PATHS[1], endpoint, methods=["POST"]),
        Route(PATHS[2], endpoint, methods=["POST"]),
    ]
