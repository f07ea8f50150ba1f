"""The HTTP application: one table of operations, each a thin call into gitstore's public API.

Every operation (:class:`Operation`) names its method, path, the scope it needs (``read``,
``write`` or ``admin``) and the specs it touches; :func:`create_app` turns the table into
Starlette routes wrapped by one function that checks the token first, runs the handler, and turns
any error into a response through the one status table of :mod:`gitstore.server.errors`. The
same table generates ``/openapi.json``, so the document cannot miss a route.

Handlers never call the store on the event loop: reads go through ``anyio.to_thread.run_sync``,
uploads through :func:`gitstore.server.uploads.run_with_body`, bytes out through
:mod:`gitstore.server.blobs`. The JSON they send is the ``to_dict()`` of the library's values,
the same documents as the CLI's ``--json``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, cast

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gitstore import (
    Artifact,
    ConflictError,
    GitstoreError,
    InvalidNameError,
    NotFoundError,
    Store,
    TaskDeletion,
    Tokens,
    UsageError,
    Version,
    find,
    parse_address,
    parse_uri,
)
from gitstore.server.auth import Access
from gitstore.server.blobs import artifact_response
from gitstore.server.errors import (
    DigestMismatchError,
    InvalidParameterError,
    InvalidUploadError,
    MethodNotAllowedError,
    PreconditionFailedError,
    PreconditionRequiredError,
)
from gitstore.server.ops import (
    API,
    Ctx,
    Operation,
    Param,
    ServerConfig,
    error_response,
    json_response,
    parse_digest,
    parse_size,
)
from gitstore.server.uploads import BodyReader, Form, read_multipart

__all__ = [
    "API",
    "Ctx",
    "Operation",
    "Param",
    "ServerConfig",
    "create_app",
    "error_response",
    "parse_digest",
    "parse_size",
]

log = logging.getLogger("gitstore.server")


def _header_digest(request: Request) -> str | None:
    """The sha256 a client sent in ``Repr-Digest``/``Content-Digest`` (RFC 9530) or ``Digest``."""
    for header in ("repr-digest", "content-digest", "digest"):
        raw = request.headers.get(header)
        if raw is None:
            continue
        for item in raw.split(","):
            algo, _, value = item.strip().partition("=")
            if algo.strip().lower() != "sha-256":
                continue
            value = value.strip().strip(":")
            try:
                data = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise InvalidUploadError(f"{header}: sha-256 value is not base64") from None
            if len(data) != 32:
                raise InvalidUploadError(f"{header}: sha-256 value is not 32 bytes")
            return data.hex()
    return None


def _limit(ctx: Ctx, default: int | None = None, most: int | None = None) -> int | None:
    raw = ctx.query("limit")
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1 or (most is not None and int(raw) > most):
        bound = f"1 to {most}" if most is not None else "at least 1"
        raise InvalidParameterError(f"limit {raw!r} must be a whole number, {bound}")
    return int(raw)


def _key_values(values: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"{what} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidParameterError(f"metadata is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise InvalidParameterError("metadata must be a JSON object")
    return value


def _flag(raw: str | None, what: str) -> bool:
    if raw is None or raw.lower() in ("", "0", "false", "no"):
        return False
    if raw.lower() in ("1", "true", "yes"):
        return True
    raise InvalidParameterError(f"{what} {raw!r} is not true or false")


def _rev_address(ctx: Ctx) -> str:
    rev = ctx.path("rev")
    return ctx.address if rev == "latest" else f"{ctx.address}@{rev}"


def _version_created(version: Version, status: int = 201) -> Response:
    """A version a write made (``status``), or 200 when the write changed nothing."""
    location = f"{API}/tasks/{version.spec}/{version.task}/versions/{version.commit}"
    return json_response(
        version.to_dict(created=True),
        status if version.created else 200,
        {"Location": location, "ETag": f'"{version.commit}"'},
    )


# -- reading -----------------------------------------------------------------------------------


async def list_specs(ctx: Ctx) -> Response:
    specs = await ctx.run(ctx.store.spec_summaries)
    return json_response([s.to_dict() for s in specs if ctx.sees(s.name)])


async def list_tasks(ctx: Ctx) -> Response:
    heads = await ctx.run(ctx.store.task_heads, ctx.path("spec"))
    return json_response([h.to_dict() for h in heads])


async def log_versions(ctx: Ctx) -> Response:
    limit = _limit(ctx)
    rev = ctx.query("rev")
    address = ctx.address if rev in (None, "", "latest") else f"{ctx.address}@{rev}"
    artifacts = _flag(ctx.query("artifacts"), "artifacts")
    versions = await ctx.run(lambda: ctx.store.log(address, limit=limit))
    return json_response([v.to_dict(artifacts=artifacts) for v in versions])


async def show_version(ctx: Ctx) -> Response:
    version = await ctx.run(ctx.store.show, _rev_address(ctx))
    return json_response(version.to_dict(), headers={"ETag": f'"{version.commit}"'})


async def artifact_bytes(ctx: Ctx) -> Response:
    rev = ctx.request.path_params.get("rev", "latest")
    address = ctx.address if rev == "latest" else f"{ctx.address}@{rev}"
    info = await ctx.run(ctx.store.artifact, address, ctx.path("name"))
    # Read through the pinned URI: the bytes are those of the version just resolved even if a
    # writer moves the task before the body is sent.
    return artifact_response(
        ctx.request,
        info,
        lambda: ctx.store.open_artifact(info.uri),
        pinned=re.fullmatch(r"[0-9a-f]{40}", rev) is not None,
    )


async def resolve_uri(ctx: Ctx) -> Response:
    uri = ctx.query("uri")
    if not uri:
        raise InvalidParameterError("resolve needs ?uri=gitstore://SPEC/TASK@COMMIT/NAME")
    ctx.allow(parse_uri(uri).spec)
    info = await ctx.run(ctx.store.resolve, uri)
    return json_response(info.to_dict())


async def diff_versions(ctx: Ctx) -> Response:
    old = ctx.query("old")
    new = ctx.query("new")
    if not old:
        raise InvalidParameterError("diff needs ?old=SPEC/TASK[@REV] (and optionally &new=...)")
    for address in (old, new):
        if address:
            ctx.allow(parse_address(address).spec)
    diff = await ctx.run(ctx.store.diff, old, new or None)
    return json_response(diff.to_dict())


async def find_versions(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    limit = _limit(ctx)
    pattern = ctx.query("task")
    restricted = ctx.token is not None and ctx.token.spec is not None

    def query() -> list[Version]:
        found = find(
            ctx.store,
            run=ctx.query("run"),
            tags=_key_values(params.getlist("tag"), "tag") or None,
            content_type=ctx.query("type"),
            pattern=pattern,
            since=ctx.query("since"),
            until=ctx.query("until"),
            # A token limited to some specs sees only those: filter first, then cut.
            limit=None if restricted else limit,
            artifacts=False,
        )
        return [v for v in found if ctx.sees(v.spec)][:limit]

    versions = await ctx.run(query)
    return json_response([v.to_dict(artifacts=False) for v in versions])


# -- writing -----------------------------------------------------------------------------------

_UPLOAD_FIELDS = {
    "artifacts",
    "run_id",
    "message",
    "metadata",
    "tag",
    "content_type",
    "sha256",
    "replace",
    "force",
}


async def upload_version(ctx: Ctx) -> Response:
    address = ctx.address
    Store.check_put(address, {"-": b""})  # a bad address is refused before the body is read

    def check_name(name: str) -> None:
        Store.check_put(address, {name: b""})

    def work(reader: BodyReader) -> Version:
        form = read_multipart(
            reader, ctx.request.headers.get("content-type"), ctx.store.path, check_name
        )
        try:
            return _put_form(ctx, address, form)
        finally:
            form.close()

    version = await ctx.with_body(work)
    return _version_created(version)


def _put_form(ctx: Ctx, address: str, form: Form) -> Version:
    unknown = sorted(set(form.fields) - _UPLOAD_FIELDS)
    if unknown:
        raise InvalidUploadError(
            f"unknown form field {unknown[0]!r} (fields: {', '.join(sorted(_UPLOAD_FIELDS))})"
        )
    if not form.parts:
        raise InvalidUploadError("the upload holds no file part (each file part is an artifact)")
    seen: set[str] = set()
    for part in form.parts:
        if part.filename in seen:
            raise InvalidUploadError(f"artifact {part.filename!r} is given twice in one upload")
        seen.add(part.filename)
    facts, stated = _part_facts(form)
    digests = {**_part_digests(form), **stated}
    for part in form.parts:
        want = digests.get(part.filename)
        if want is not None and want != part.sha256:
            raise DigestMismatchError(
                f"{part.filename}: the bytes' sha256 is {part.sha256}, not {want} as sent"
            )
    default_type = form.value("content_type") or None
    artifacts: dict[str, Artifact] = {}
    for part in form.parts:
        ctype = part.content_type
        if ctype is None or ctype.lower() == "application/octet-stream":
            ctype = default_type  # then the library's guess from the name
        artifact = facts.get(part.filename)
        if artifact is None:
            artifacts[part.filename] = Artifact(part.file, content_type=ctype)
        else:
            # Said per artifact (what gitstore's own client sends): its content type wins.
            ctype = artifact.content_type or ctype
            artifacts[part.filename] = dataclasses.replace(
                artifact, source=part.file, content_type=ctype
            )
    return ctx.store.put(
        address,
        artifacts,
        run_id=form.value("run_id") or None,
        message=form.value("message") or None,
        metadata=_metadata(form.value("metadata")),
        tags=_key_values(form.fields.get("tag", []), "tag") or None,
        replace=_flag(form.value("replace"), "replace"),
        force=_flag(form.value("force"), "force"),
    )


def _part_facts(form: Form) -> tuple[dict[str, Artifact], dict[str, str]]:
    """The ``artifacts`` field: ``{NAME: {content_type, tags, executable, masked_secrets,
    truncated, sha256}}`` for file parts of those names (each key optional; all but ``sha256``
    are ``Artifact.to_dict``). Returns the artifacts (bytes not yet attached) and the digests.

    One field for every file, so a client may send it after the files with the digests it
    computed while sending them, however many files there are.
    """
    raw = form.value("artifacts")
    if not raw:
        return {}, {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise InvalidUploadError(f"the artifacts field is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidUploadError("the artifacts field must be a JSON object: NAME -> facts")
    parts = {p.filename for p in form.parts}
    out: dict[str, Artifact] = {}
    digests: dict[str, str] = {}
    for name, value in doc.items():
        if name not in parts:
            raise InvalidUploadError(
                f"the artifacts field names {name!r}, which is not a file part"
            )
        if isinstance(value, dict) and "sha256" in value:
            value = dict(value)
            digest = value.pop("sha256")
            if not isinstance(digest, str):
                raise InvalidUploadError(f"the artifacts field, {name!r}: sha256 is not a string")
            digests[name] = parse_digest(digest)
        try:
            out[name] = Artifact.from_dict(b"", value)
        except UsageError as e:
            raise InvalidUploadError(f"the artifacts field, {name!r}: {e}") from None
    return out, digests


def _part_digests(form: Form) -> dict[str, str]:
    """``sha256`` fields: ``NAME=sha256:<hex>`` each, or one bare digest for a one-file upload."""
    out: dict[str, str] = {}
    for value in form.fields.get("sha256", []):
        name, sep, digest = value.rpartition("=")
        if not sep:
            if len(form.parts) != 1:
                raise InvalidUploadError(
                    "a bare sha256 field needs exactly one file; give NAME=sha256:<hex>"
                )
            name, digest = form.parts[0].filename, value
        if name not in {p.filename for p in form.parts}:
            raise InvalidUploadError(f"sha256 field names {name!r}, which is not a file part")
        out[name] = parse_digest(digest)
    return out


_RAW_IGNORED_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def put_artifact(ctx: Ctx) -> Response:
    address, name = ctx.address, ctx.path("name")
    Store.check_put(address, {name: b""})  # refused before a byte of the body is read
    params = ctx.request.query_params
    unknown = sorted(set(params) - _UPLOAD_FIELDS)
    if unknown:
        raise InvalidParameterError(f"unknown query parameter {unknown[0]!r}")
    ctype = ctx.query("content_type")
    if not ctype:
        sent = ctx.request.headers.get("content-type")
        # curl --data-binary sends application/x-www-form-urlencoded unless told otherwise.
        if sent and not sent.lower().startswith(_RAW_IGNORED_TYPES):
            ctype = sent
    expect = _header_digest(ctx.request)
    if ctx.query("sha256"):
        expect = parse_digest(str(ctx.query("sha256")))
    tags = _key_values(params.getlist("tag"), "tag") or None
    metadata = _metadata(ctx.query("metadata"))

    def work(reader: BodyReader) -> Version:
        # The library reads a binary file object; the reader is one (read(n) returns bytes).
        source = cast(IO[bytes], reader)
        return ctx.store.put(
            address,
            {name: Artifact(source, content_type=ctype or None)},
            run_id=ctx.query("run_id") or None,
            message=ctx.query("message") or None,
            metadata=metadata,
            tags=tags,
            replace=_flag(ctx.query("replace"), "replace"),
            force=_flag(ctx.query("force"), "force"),
        )

    version = await ctx.with_body(work, expect_sha256=expect)
    return _version_created(version)


async def remove_artifacts(ctx: Ctx) -> Response:
    names = ctx.request.query_params.getlist("name")
    version = await ctx.run(
        lambda: ctx.store.rm(
            ctx.address,
            names,
            run_id=ctx.query("run_id") or None,
            message=ctx.query("message") or None,
        )
    )
    return _version_created(version, 200)


async def delete_task(ctx: Ctx) -> Response:
    raw = ctx.request.headers.get("if-match")
    if raw is None:
        raise PreconditionRequiredError(
            "deleting a task needs If-Match: the commit you mean to delete (or *)"
        )
    value = raw.strip().removeprefix("W/").strip('"').lower()
    expect = None if value == "*" else value
    if expect is not None and not re.fullmatch(r"[0-9a-f]{40}", expect):
        raise InvalidParameterError(f"If-Match {raw!r} is not a commit id (40 hex digits) or *")
    address = ctx.address
    try:
        commit = await ctx.run(lambda: ctx.store.rm_task(address, expect=expect))
    except ConflictError:
        head = (await ctx.run(ctx.store.heads_in, address)).get(address)
        if expect is not None and head != expect:
            raise PreconditionFailedError(
                f"{address} is at {head}, not {expect}: it moved since you read it"
            ) from None
        raise
    return json_response(TaskDeletion(address, commit).to_dict())


# -- the table ---------------------------------------------------------------------------------

_T = f"{API}/tasks/{{spec}}/{{task}}"
_VERSION = {200: "Version"}

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", f"{API}/specs", list_specs, "read", "List specs", path_specs=False),
    Operation("GET", f"{API}/specs/{{spec}}/tasks", list_tasks, "read", "List a spec's tasks"),
    Operation(
        "GET",
        f"{_T}/versions",
        log_versions,
        "read",
        "List a task's versions, newest first",
        query=(
            Param("limit", "at most this many", integer=True),
            Param("rev", "start from this version (vN, ~N, a commit prefix)"),
            Param("artifacts", "true: each version with its artifacts"),
        ),
    ),
    Operation("GET", f"{_T}/versions/{{rev}}", show_version, "read", "Show one version"),
    Operation(
        "GET",
        f"{_T}/versions/{{rev}}/artifacts/{{name:path}}",
        artifact_bytes,
        "read",
        "An artifact's bytes (Range, ETag)",
    ),
    Operation(
        "GET",
        f"{_T}/artifacts/{{name:path}}",
        artifact_bytes,
        "read",
        "An artifact's bytes in the latest version",
        name="latest_artifact_bytes",
    ),
    Operation(
        "GET",
        f"{API}/resolve",
        resolve_uri,
        "read",
        "Resolve a gitstore:// URI",
        query=(Param("uri", "gitstore://SPEC/TASK@COMMIT/NAME"),),
        path_specs=False,
    ),
    Operation(
        "GET",
        f"{API}/diff",
        diff_versions,
        "read",
        "Names added, removed and changed between two versions",
        query=(Param("old", "SPEC/TASK[@REV]"), Param("new", "SPEC/TASK[@REV]")),
        path_specs=False,
    ),
    Operation(
        "GET",
        f"{API}/find",
        find_versions,
        "read",
        "Versions matching every condition, newest first",
        query=(
            Param("run", "run id"),
            Param("tag", "KEY=VALUE one artifact carries", repeated=True),
            Param("type", "content type (text/* a family)"),
            Param("task", "SPEC/TASK glob, or one SPEC"),
            Param("since", "created at or after (ISO 8601)"),
            Param("until", "created before (ISO 8601)"),
            Param("limit", "at most this many", integer=True),
        ),
        path_specs=False,
    ),
    Operation(
        "POST",
        f"{_T}/versions",
        upload_version,
        "write",
        "Make ONE version from a multipart upload (each file part is an artifact)",
        body="multipart",
        responses={201: "Version", 200: "Version (unchanged)"},
    ),
    Operation(
        "PUT",
        f"{_T}/artifacts/{{name:path}}",
        put_artifact,
        "write",
        "Make a version with one artifact added, from the raw body",
        query=(
            Param("run_id", "run id of the new version"),
            Param("message", "message of the new version"),
            Param("metadata", "JSON object"),
            Param("tag", "KEY=VALUE", repeated=True),
            Param("content_type", "the artifact's content type"),
            Param("sha256", "sha256:<hex> the body must hash to"),
            Param("replace", "true: start from an empty set"),
            Param("force", "true: a new version even if nothing changed"),
        ),
        body="raw",
        responses={201: "Version", 200: "Version (unchanged)"},
    ),
    Operation(
        "DELETE",
        f"{_T}/artifacts",
        remove_artifacts,
        "write",
        "Make a version without the named artifacts",
        query=(
            Param("name", "artifact name (a folder removes its files)", repeated=True),
            Param("run_id", "run id of the new version"),
            Param("message", "message of the new version"),
        ),
        responses={200: "Version"},
    ),
    Operation(
        "DELETE",
        _T,
        delete_task,
        "admin",
        "Delete a task's ref (If-Match: its commit)",
        responses={200: "TaskDeletion"},
    ),
)


# -- the app -----------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class _RefuseControlCharacters:
    """400 for a request whose header values hold control characters (tab aside).

    h11 lets some through; no header this server reads may hold one, and refusing them at the
    door keeps them out of names, logs and messages.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if _CONTROL_BYTES.search(value):
                    header = name.decode("latin-1")
                    refused = UsageError(f"header {header!r} holds a control character")
                    await error_response(refused)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _wrap(
    op: Operation,
    store: Store,
    config: ServerConfig,
    access: Access,
    uploads: anyio.CapacityLimiter,
) -> Callable[[Request], Awaitable[Response]]:
    render = op.renderer or error_response

    async def endpoint(request: Request) -> Response:
        try:
            specs: list[str] = []
            if op.path_specs:
                # The agent-job routes name a job, whose spec is the configured jobs spec.
                specs = [str(request.path_params.get("spec", config.jobs_spec))]
            token = access.authorize(request.headers, op.scope, specs)
            return await op.handler(Ctx(request, store, config, token, uploads))
        except GitstoreError as e:
            return render(e)
        except Exception as e:
            log.exception("%s %s failed", request.method, request.url.path)
            return render(e)

    endpoint.__name__ = op.handler.__name__
    return endpoint


def create_app(
    store: Store,
    config: ServerConfig | None = None,
    *,
    operations: Sequence[Operation] | None = None,
    mounts: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ASGI app serving ``store`` (the caller opens and closes the store).

    ``operations`` defaults to the REST API plus the agent-job routes; ``mounts`` are further
    Starlette routes or mounts served on the same port (they do their own auth).
    """
    from gitstore.server.compat import COMPAT_OPERATIONS
    from gitstore.server.openapi import openapi_document
    from gitstore.server.web import web_mount

    config = config or ServerConfig()
    ops = tuple(operations) if operations is not None else OPERATIONS + COMPAT_OPERATIONS
    tokens = Tokens(store.path) if store.path is not None else None
    access = Access(tokens, config.public_read, config.open_without_tokens)
    document = openapi_document(ops)

    async def openapi(ctx: Ctx) -> Response:
        return json_response(document)

    spec_op = Operation("GET", "/openapi.json", openapi, "read", "This document", path_specs=False)
    uploads = anyio.CapacityLimiter(config.upload_threads)
    routes: list[BaseRoute] = [
        Route(op.path, _wrap(op, store, config, access, uploads), methods=[op.method])
        for op in (*ops, spec_op)
    ]
    # The web page for people, at /ui: before the mounts, one of which may take every other path.
    routes.append(web_mount(store, access))
    if store.path is not None:
        # Git smart HTTP at the base URL: `git clone URL`, `gitstore pull URL` (see git.py).
        from gitstore.server.git import git_routes

        routes.extend(git_routes(store, access))
    routes.extend(mounts)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            response = error_response(
                MethodNotAllowedError(f"{request.method} is not allowed here")
            )
            if exc.headers and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        if exc.status_code == 404:
            # request.url drops tabs and newlines (urllib does); the scope's path keeps them.
            if _CONTROL.search(request.scope["path"]):
                # The router's patterns stop at a newline: say what is wrong with the name.
                return error_response(InvalidNameError("the path holds a control character"))
            return error_response(NotFoundError(f"no route {request.url.path}"))
        return JSONResponse(
            {"type": "about:blank", "title": exc.detail, "status": exc.status_code},
            status_code=exc.status_code,
            media_type="application/problem+json",
        )

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(_RefuseControlCharacters)],
    )
    app.state.store = store
    app.state.config = config
    app.state.operations = (*ops, spec_op)
    return app
