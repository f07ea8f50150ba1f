"""Serve a store over Git smart HTTP on 127.0.0.1 (uvicorn, a2wsgi), for the tests in a process of
its own: ``python tests/git_http_server.py STORE PORT``."""

from __future__ import annotations

import sys

import uvicorn
from a2wsgi import WSGIMiddleware

from gitstore import Store
from gitstore.gitserve import git_http_app

if __name__ == "__main__":
    store = Store.open(sys.argv[1])
    app = WSGIMiddleware(git_http_app(store))  # type: ignore[arg-type]
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
