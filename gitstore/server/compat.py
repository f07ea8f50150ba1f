"""The agent-job upload routes the runner projects already speak, served from the store.

::

    POST /api/queue/jobs/{jobId}/artifacts/upload                  multipart: file, name,
                                                                   contentType, digest, workerId
    GET  /api/queue/jobs/{jobId}/artifacts?limit=N                 {"items": [...]}, newest first
    GET  /api/queue/jobs/{jobId}/artifacts/{artifactId}/download   the bytes

A job is the task ``<jobs spec>/<jobId>`` (``jobs`` unless ``--jobs-spec``); each upload makes one
version of it with that artifact added, through the same ``Store.put`` (and compare-and-swap) as
every other write. An artifact id is the url-safe base64 (no padding) of its pinned URI without
the scheme, ``SPEC/TASK@COMMIT/NAME``: it names one artifact of one version, so a download by id
gives the same bytes after later uploads (even of the same name), and an id of another job is
recognised as such (409) without a lookup. Listing walks the job's versions newest first and
lists, for each, the artifacts that version wrote (new or changed bytes), so every upload is an
item of its own.

Errors here are ``{"detail": {"code", "message"}}``: the code from :data:`CODES`, the status
from the one table in :mod:`gitstore.server.errors`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.responses import JSONResponse, Response

from gitstore import (
    Artifact,
    ArtifactInfo,
    ArtifactNotFoundError,
    GitstoreError,
    InputError,
    InvalidNameError,
    NotFoundError,
    Store,
    TaskNotFoundError,
    UsageError,
    Version,
    parse_uri,
)
from gitstore.server.auth import CHALLENGES
from gitstore.server.blobs import artifact_response
from gitstore.server.errors import (
    ArtifactJobMismatchError,
    AuthRequiredError,
    BadUploadError,
    DigestMismatchError,
    ForbiddenError,
    InvalidUploadError,
    PayloadTooLargeError,
    WorkerNotAuthorizedError,
    status_of,
)
from gitstore.server.ops import Ctx, Operation, Param, parse_digest
from gitstore.server.uploads import BodyReader, read_multipart

__all__ = ["CODES", "COMPAT_OPERATIONS", "artifact_id", "compat_error", "item"]

URI_SCHEME = "gitstore://"
QUEUE = "/api/queue/jobs/{jobId}/artifacts"
DEFAULT_TYPE = "application/octet-stream"

# Error class -> the contract's code, looked up along the MRO like the status table.
CODES: dict[type[BaseException], str] = {
    GitstoreError: "internal_error",
    UsageError: "invalid_queue_payload",
    InvalidNameError: "invalid_queue_payload",
    InputError: "invalid_queue_payload",
    BadUploadError: "invalid_queue_payload",
    InvalidUploadError: "invalid_queue_payload",
    PayloadTooLargeError: "artifact_too_large",
    NotFoundError: "artifact_not_found",
    TaskNotFoundError: "job_not_found",
    ArtifactJobMismatchError: "artifact_job_mismatch",
    AuthRequiredError: "unauthorized",
    ForbiddenError: "forbidden",
    WorkerNotAuthorizedError: "worker_not_authorized",
}


def compat_error(exc: BaseException) -> Response:
    """``{"detail": {"code", "message"}}`` with the status of the one table."""
    code = next((CODES[c] for c in type(exc).__mro__ if c in CODES), "internal_error")
    message = str(exc) if isinstance(exc, GitstoreError) else "internal error"
    headers = (
        {"WWW-Authenticate": ", ".join(CHALLENGES)} if isinstance(exc, AuthRequiredError) else {}
    )
    return JSONResponse(
        {"detail": {"code": code, "message": message}},
        status_code=status_of(exc),
        headers=headers,
    )


def artifact_id(info: ArtifactInfo) -> str:
    """The id of an artifact of one version: its pinned URI, scheme dropped, base64url."""
    path = info.uri.removeprefix(URI_SCHEME)
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_id(value: str) -> tuple[str, str, str, str]:
    """spec, task, commit, name of an artifact id; ArtifactNotFoundError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        uri = parse_uri(URI_SCHEME + raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ArtifactNotFoundError(f"no artifact with id {value!r}") from None
    commit = str(uri.rev)
    if len(commit) != 40:
        raise ArtifactNotFoundError(f"no artifact with id {value!r}")
    return uri.spec, uri.task, commit, uri.name


def item(job: str, info: ArtifactInfo) -> dict[str, Any]:
    """One artifact as the contract shows it."""
    return {
        "id": artifact_id(info),
        "jobId": job,
        "name": info.name,
        "contentType": info.content_type,
        "sizeBytes": info.size,
        "digest": f"sha256:{info.sha256}",
        "storagePath": info.uri,
        "createdAt": info.created_at,
    }


def _job(ctx: Ctx) -> tuple[str, str]:
    job = ctx.path("jobId")
    address = f"{ctx.config.jobs_spec}/{job}"
    Store.check_put(address, {"-": b""})  # a job id that is no task name: 422
    return job, address


async def upload(ctx: Ctx) -> Response:
    job, address = _job(ctx)

    def work(reader: BodyReader) -> ArtifactInfo:
        form = read_multipart(reader, ctx.request.headers.get("content-type"), ctx.store.path)
        try:
            files = [p for p in form.parts if p.field == "file"]
            if len(form.parts) != 1 or not files:
                raise InvalidUploadError("the upload needs exactly one file part, named 'file'")
            part = files[0]
            name = form.value("name") or part.filename
            if not name:
                raise InvalidNameError("the artifact name is empty")
            Store.check_put(address, {name: b""})
            if part.size == 0:
                raise InvalidUploadError(f"{name}: the file is empty")
            worker = form.value("workerId") or None
            if worker is not None and ctx.token is not None and worker != ctx.token.name:
                raise WorkerNotAuthorizedError(
                    f"workerId {worker!r} is not the name of this request's token"
                )
            digest = form.value("digest")
            if digest and parse_digest(digest) != part.sha256:
                raise DigestMismatchError(
                    f"{name}: the bytes' sha256 is {part.sha256}, not {digest} as sent"
                )
            ctype = form.value("contentType") or part.content_type or DEFAULT_TYPE
            version = ctx.store.put(
                address,
                {name: Artifact(part.file, content_type=ctype)},
                message=f"upload {name}",
                metadata={"worker_id": worker} if worker else None,
            )
            return version.artifact(name)
        finally:
            form.close()

    info = await ctx.with_body(work)
    return JSONResponse(item(job, info), status_code=201)


def _written(version: Version, parent: Version | None) -> list[ArtifactInfo]:
    """The artifacts ``version`` wrote: new names, or new bytes or type under an old name."""
    before = {a.name: a for a in parent.artifacts} if parent is not None else {}
    out = []
    for a in version.artifacts:
        old = before.get(a.name)
        if old is None or (old.oid, old.created_at) != (a.oid, a.created_at):
            out.append(a)
    return sorted(out, key=lambda a: (a.created_at, a.name), reverse=True)


async def list_artifacts(ctx: Ctx) -> Response:
    job, address = _job(ctx)
    raw = ctx.query("limit")
    if raw is not None and (not raw.isdigit() or not 1 <= int(raw) <= 500):
        raise InvalidUploadError(f"limit {raw!r} must be a whole number from 1 to 500")
    limit = int(raw) if raw is not None else 100

    def items() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        versions = ctx.store.iter_versions(address)
        version: Version | None = next(versions)
        while version is not None and len(out) < limit:
            parent = next(versions, None)
            out.extend(item(job, a) for a in _written(version, parent))
            version = parent
        return out[:limit]

    return JSONResponse({"items": await ctx.run(items)})


async def download(ctx: Ctx) -> Response:
    job, address = _job(ctx)
    await ctx.run(ctx.store.heads_in, address)  # a job with no artifacts: job_not_found
    spec, task, commit, name = _decode_id(ctx.path("artifactId"))
    if f"{spec}/{task}" != address:
        raise ArtifactJobMismatchError(
            f"artifact {ctx.path('artifactId')!r} belongs to {spec}/{task}, not job {job!r}"
        )
    info = await ctx.run(ctx.store.artifact, f"{address}@{commit}", name)
    return artifact_response(
        ctx.request, info, lambda: ctx.store.open_artifact(info.uri), pinned=True
    )


COMPAT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        f"{QUEUE}/upload",
        upload,
        "write",
        "Agent jobs: upload one artifact (multipart: file, name, contentType, digest, workerId)",
        body="multipart",
        responses={201: "QueueArtifact"},
        renderer=compat_error,
    ),
    Operation(
        "GET",
        QUEUE,
        list_artifacts,
        "read",
        "Agent jobs: a job's artifacts, newest first",
        query=(Param("limit", "1 to 500 (default 100)", integer=True),),
        responses={200: "QueueArtifactList"},
        renderer=compat_error,
    ),
    Operation(
        "GET",
        f"{QUEUE}/{{artifactId}}/download",
        download,
        "read",
        "Agent jobs: an artifact's bytes",
        responses={200: "bytes"},
        renderer=compat_error,
    ),
)
