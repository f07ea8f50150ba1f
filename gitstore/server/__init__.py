"""gitstore's HTTP service: a REST API over a store, the agent-job upload routes, a web page.

A layer above the library: it imports only what ``gitstore`` exports, plus Starlette, anyio,
python-multipart, a2wsgi, Jinja2, Pygments and the standard library (install with
``pip install 'gitstore-artifacts[server]'``).
``gitstore serve`` runs :func:`create_app` on uvicorn; tests and other hosts can mount the app
anywhere ASGI runs. Modules: :mod:`~gitstore.server.app` (routes and handlers),
:mod:`~gitstore.server.uploads` (bodies in, bounded memory), :mod:`~gitstore.server.blobs`
(bytes out, ranges), :mod:`~gitstore.server.auth` (tokens), :mod:`~gitstore.server.errors` (the
status table), :mod:`~gitstore.server.compat` (agent-job routes),
:mod:`~gitstore.server.openapi`; the web page for people: :mod:`~gitstore.server.web` (routes
and pages at ``/ui``), :mod:`~gitstore.server.webauth` (sessions),
:mod:`~gitstore.server.render` (logs, diffs, test results, JSON as HTML),
:mod:`~gitstore.server.logview` (windows of big logs).
"""

from __future__ import annotations

from gitstore.server.app import OPERATIONS, Operation, ServerConfig, create_app, parse_size
from gitstore.server.errors import STATUS, status_of

__all__ = [
    "OPERATIONS",
    "STATUS",
    "Operation",
    "ServerConfig",
    "create_app",
    "parse_size",
    "status_of",
]
