"""The pieces every route is made of: the server's configuration, what a handler gets
(:class:`Ctx`), the table's row (:class:`Operation`), error responses, and the parsers of sizes
and digests.

They sit below :mod:`gitstore.server.app` (the table and the app), :mod:`~gitstore.server.compat`
(the agent-job routes) and :mod:`~gitstore.server.openapi`, which all use them without importing
each other.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gitstore import Store, Token
from gitstore.server.auth import CHALLENGES
from gitstore.server.errors import (
    AuthRequiredError,
    ForbiddenError,
    InvalidParameterError,
    InvalidUploadError,
    problem_body,
)
from gitstore.server.uploads import BodyReader, run_with_body

__all__ = [
    "API",
    "GIB",
    "Ctx",
    "Handler",
    "Operation",
    "Param",
    "ServerConfig",
    "error_response",
    "json_response",
    "parse_digest",
    "parse_size",
]

T = TypeVar("T")

GIB = 1 << 30
API = "/api/v1"


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """How the server was started.

    ``open_without_tokens``: with no token in the store, let every request through (what
    ``gitstore serve`` sets when it listens on loopback only). ``public_read``: reads need no
    token. ``jobs_spec``: the spec whose tasks are the agent-job routes' jobs.
    ``body_timeout``: seconds an upload may send nothing before it is dropped (408).
    ``upload_threads``: worker threads uploads may hold at once; reads use anyio's own pool
    (40 threads), so stalled uploads never starve them.
    """

    max_upload: int = 10 * GIB
    public_read: bool = False
    open_without_tokens: bool = False
    jobs_spec: str = "jobs"
    body_timeout: float = 300.0
    upload_threads: int = 32


@dataclasses.dataclass(frozen=True)
class Ctx:
    """What a handler gets: the request, the store, the configuration and the caller's token."""

    request: Request
    store: Store
    config: ServerConfig
    token: Token | None
    uploads: anyio.CapacityLimiter

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    @property
    def address(self) -> str:
        """``SPEC/TASK`` from the path."""
        return f"{self.path('spec')}/{self.path('task')}"

    def query(self, name: str) -> str | None:
        """A query parameter (the last, if repeated); None when absent."""
        values = self.request.query_params.getlist(name)
        return values[-1] if values else None

    def allow(self, spec: str) -> None:
        """Refuse (403) a spec outside the token's spec pattern."""
        if self.token is not None and not self.token.covers(spec):
            raise ForbiddenError(
                f"token {self.token.name!r} is limited to specs {self.token.spec!r}, not {spec!r}"
            )

    def sees(self, spec: str) -> bool:
        """True if the caller may see ``spec`` (listings leave the others out)."""
        return self.token is None or self.token.covers(spec)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a blocking function in a worker thread."""
        return await anyio.to_thread.run_sync(fn, *args)

    async def with_body(
        self, work: Callable[[BodyReader], T], *, expect_sha256: str | None = None
    ) -> T:
        """Run ``work`` in an upload thread, reading the request body (see uploads.py)."""
        return await run_with_body(
            self.request,
            work,
            limit=self.config.max_upload,
            expect_sha256=expect_sha256,
            idle=self.config.body_timeout,
            limiter=self.uploads,
        )


Handler = Callable[[Ctx], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Param:
    """A query parameter, for the OpenAPI document."""

    name: str
    description: str
    repeated: bool = False
    integer: bool = False


@dataclasses.dataclass(frozen=True)
class Operation:
    """One route: method, path, scope, handler and what the OpenAPI document says about it.

    ``path_specs``: the request's specs come from the ``{spec}`` path parameter (checked against
    the token before the handler runs); otherwise the handler checks what it touches.
    """

    method: str
    path: str
    handler: Handler
    scope: str
    summary: str
    query: tuple[Param, ...] = ()
    body: str | None = None  # "multipart" | "raw" | None
    responses: Mapping[int, str] = dataclasses.field(default_factory=dict)
    path_specs: bool = True
    renderer: Callable[[BaseException], Response] | None = None
    name: str | None = None  # the OpenAPI operationId, when not the handler's name

    @property
    def operation_id(self) -> str:
        """The OpenAPI operationId: unique per operation."""
        return self.name or self.handler.__name__


def error_response(exc: BaseException) -> Response:
    """The problem+json response for ``exc`` (the REST API's errors)."""
    body = problem_body(exc)
    headers = {}
    if isinstance(exc, AuthRequiredError):
        headers["WWW-Authenticate"] = ", ".join(CHALLENGES)
    return JSONResponse(
        body, status_code=body["status"], headers=headers, media_type="application/problem+json"
    )


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer."""
    return JSONResponse(value, status_code=status, headers=dict(headers or {}))


# -- helpers for handlers ----------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``10G``, ``500M``, ``64K`` or a plain number of bytes (binary units: 1K = 1024)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text, re.I)
    if m is None:
        raise InvalidParameterError(f"size {text!r} is not a number with an optional K, M, G or T")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(m.group(1)) << (10 * power)


def parse_digest(value: str) -> str:
    """A caller's sha256 as lowercase hex: ``sha256:<hex>`` or plain hex."""
    hexdigest = value.strip().removeprefix("sha256:").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise InvalidUploadError(f"digest {value!r} is not sha256:<64 hex digits>")
    return hexdigest
