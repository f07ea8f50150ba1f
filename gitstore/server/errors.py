"""The server's errors and the ONE table that turns any error into an HTTP status.

The library's errors carry their CLI exit code (``gitstore.errors``); :data:`STATUS` gives each
class its HTTP status, looked up along the class's MRO so a subclass answers like its parent
unless it has a row of its own. The errors below are the ones only a server meets (credentials,
preconditions, request bodies); each subclasses the library error a client would raise for it,
so its ``exit_code`` is the one the CLI would exit with.

Every error leaves the REST API as ``application/problem+json`` (RFC 9457) built by
:func:`problem_body`: ``type``, ``title``, ``status``, ``detail`` plus ``error`` (the class name)
and ``exit_code``. Anything that is not a :class:`~gitstore.GitstoreError` is a bug: 500, with the
detail kept for the server's log.
"""

from __future__ import annotations

import http
from typing import Any

from gitstore import (
    ConflictError,
    GitstoreError,
    InputError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    QuotaExceededError,
    RemoteAuthError,
    RemoteError,
    SecretsFoundError,
    StoreError,
    StoreFullError,
    UsageError,
)

__all__ = [
    "STATUS",
    "ArtifactJobMismatchError",
    "AuthRequiredError",
    "BadUploadError",
    "BodyTimeoutError",
    "DigestMismatchError",
    "ForbiddenError",
    "InvalidParameterError",
    "InvalidUploadError",
    "MethodNotAllowedError",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "UnsupportedMediaTypeError",
    "WorkerNotAuthorizedError",
    "problem_body",
    "status_of",
]


class AuthRequiredError(RemoteAuthError):
    """No token, a token the store does not know, or a malformed Authorization header."""


class ForbiddenError(RemoteAuthError):
    """The token is known but its scope or spec pattern does not cover the request."""


class WorkerNotAuthorizedError(ForbiddenError):
    """An agent-job upload names a ``workerId`` other than the token's name."""


class BadUploadError(InputError):
    """A request body that cannot be read: malformed multipart, cut short, a bad header."""


class BodyTimeoutError(BadUploadError):
    """The client stopped sending the body (no bytes for the server's body timeout)."""


class UnsupportedMediaTypeError(BadUploadError):
    """A body of a type the route does not take (multipart/form-data without a boundary ...)."""


class InvalidUploadError(InputError):
    """A body that was read but is refused: an empty file, a field that is not what it says."""


class DigestMismatchError(InvalidUploadError):
    """The bytes received do not hash to the digest the caller sent with them."""


class PayloadTooLargeError(InputError):
    """A body over the server's ``--max-upload``, or a multipart body with too many parts."""


class PreconditionFailedError(ConflictError):
    """``If-Match`` names a commit the task no longer points at."""


class PreconditionRequiredError(UsageError):
    """A delete of a task without ``If-Match`` (the commit the caller means to delete)."""


class InvalidParameterError(UsageError):
    """A query parameter or field that parses but is refused (a limit out of range ...)."""


class MethodNotAllowedError(UsageError):
    """The route exists, but not for this method."""


class ArtifactJobMismatchError(ConflictError):
    """An agent-job artifact id that belongs to another job than the one in the path."""


# The one table (README "Serving a store" shows it beside the exit codes). Looked up along the
# MRO, so the most specific row wins.
STATUS: dict[type[BaseException], int] = {
    GitstoreError: 500,
    UsageError: 400,
    MethodNotAllowedError: 405,
    InvalidParameterError: 422,
    PreconditionRequiredError: 428,
    InvalidNameError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    PreconditionFailedError: 412,
    IntegrityError: 500,
    InputError: 400,
    BadUploadError: 400,
    BodyTimeoutError: 408,
    UnsupportedMediaTypeError: 415,
    InvalidUploadError: 422,
    PayloadTooLargeError: 413,
    StoreError: 500,
    RemoteError: 502,
    AuthRequiredError: 401,
    ForbiddenError: 403,
    SecretsFoundError: 422,
    QuotaExceededError: 413,
    StoreFullError: 507,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc`` from :data:`STATUS` (500 for anything unexpected)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem_body(exc: BaseException) -> dict[str, Any]:
    """The problem+json document for ``exc``."""
    status = status_of(exc)
    if isinstance(exc, GitstoreError):
        name, code, detail = type(exc).__name__, exc.exit_code, str(exc)
    else:
        # A bug: say so without handing internals to the client (the server log has them).
        name, code, detail = "InternalError", 70, "internal error (see the server's log)"
    return {
        "type": "about:blank",
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "error": name,
        "exit_code": code,
    }
