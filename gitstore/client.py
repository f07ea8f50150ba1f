"""A served store: :class:`HttpStore`, what ``Store.open("http://host:port")`` returns.

It speaks the REST API of ``gitstore serve`` (``/api/v1``) and keeps the library's contract:
the same calls, the same values, the same exception classes, so code written against a
:class:`~gitstore.Store` runs unchanged against a store on another machine (the store contract
suite runs against a live server to hold it to that).

Choices, and why:

* **A subclass of Store.** Everything typed ``Store`` (``find``, ``iter_history``,
  ``record_task``, the CLI) accepts it without a Protocol or a union. It overrides every public
  method (a test fails when Store grows one that HttpStore does not override or list as safe).
  What needs the store's files (``verify``, ``gc``, ``scan``, remotes, bundles) raises
  :class:`~gitstore.UsageError` naming the operation; anything that reaches for the local
  store's internals (``store._objects`` ...) gets the same error rather than a deep
  AttributeError.
* **urllib3**, not httpx: dulwich already depends on it, so a served store needs nothing the
  base install lacks; it streams both ways (a generator body sent chunked; responses read
  piece by piece) and its pool is safe to share between threads. It is imported when the first
  HttpStore is made, so ``import gitstore`` does not pay for it.
* **put checks and reads on this side**: the address, names, tags, metadata, folders and
  symlink rules are checked here with the library's own code before a byte is sent, and the
  bytes (files, folders, streams) go up as one streaming multipart body, 1 MiB at a time, never
  held whole. Each file's facts (content type, tags, executable bit, masked secrets,
  truncation) and the sha256 computed while sending travel in the body's ``artifacts`` field;
  the server refuses the version if the bytes it received hash otherwise.
* **mask_secrets masks here**, before upload: the secrets to mask are the caller's (their
  environment's secret-named variables, their own Masker), and masked bytes never cross the
  network unmasked.
* **Errors**: the server's problem documents name the library class (``error``); the same class
  is raised here (a server-only class by its exit code: PreconditionFailedError is a
  ConflictError, InvalidParameterError a UsageError). 401 and 403 are
  :class:`~gitstore.RemoteAuthError`; a refused or dropped connection
  :class:`~gitstore.RemoteUnreachableError`; an answer that is not gitstore's
  :class:`~gitstore.NotAStoreError`.
* **The token**: ``token=``, else ``GITSTORE_TOKEN``, else the password git's credential
  helpers hold for the URL (``git credential fill``, never prompting); none at all is fine for
  a server that needs none. It is sent as ``Authorization: Bearer``.

Opening makes no request: an unreachable server or a refused token is reported by the first
call, as with any HTTP client.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import msgspec

from gitstore import errors as _errors
from gitstore import names as _names
from gitstore._fs import atomic_write
from gitstore.backend.objects import BlobReader, Progress
from gitstore.credentials import git_credential
from gitstore.errors import (
    GitstoreError,
    InputError,
    NotAStoreError,
    NotFoundError,
    RemoteAuthError,
    RemoteError,
    RemoteUnreachableError,
    UsageError,
)
from gitstore.export import plan as export_plan
from gitstore.ingest import Input, guess_type, mask_fields, prepare
from gitstore.model import (
    Alias,
    Artifact,
    ArtifactInfo,
    Diff,
    DiskUsage,
    ExpungeReport,
    GcReport,
    Problem,
    PurgeReport,
    RetainPlan,
    SecretFinding,
    Source,
    SpecSummary,
    TaskDeletion,
    TaskHead,
    Version,
    redact_url,
)
from gitstore.secrets import Masker

# put's and export's own checks, shared with the local store so that both refuse alike.
from gitstore.store import PutBatch, Store, pick

if TYPE_CHECKING:
    import urllib3

__all__ = ["API", "TOKEN_ENV", "HttpStore", "open_url"]

API = "/api/v1"
# What a local Store holds and a served one cannot: its backends and settings.
_LOCAL_ATTRIBUTES = frozenset({"versions", "settings"})
TOKEN_ENV = "GITSTORE_TOKEN"
PIECE = 1 << 20  # bytes per read and per chunk sent or received
_ERROR_BODY = 1 << 16  # an error document is small; never read more of one

T = TypeVar("T")


def _by_exit_code() -> dict[int, type[GitstoreError]]:
    """The most general library error class of each exit code: where a class and its
    subclasses share a code (NotFoundError and TaskNotFoundError: 4), the parent."""
    out: dict[int, type[GitstoreError]] = {}
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        known = out.get(cls.exit_code)
        if known is None or issubclass(known, cls):
            out[cls.exit_code] = cls
    return out


_ERROR_CLASSES: dict[str, type[GitstoreError]] = {
    name: getattr(_errors, name) for name in _errors.__all__
}
_BY_EXIT_CODE = _by_exit_code()


class HttpStore(Store):
    """A store served by ``gitstore serve`` at ``url``, with the library API of :class:`Store`.

    Open one with ``Store.open("http://host:port")`` (or ``https://``; a path after the host is
    kept, for a server behind a proxy's prefix). ``token``: the access token (else
    ``GITSTORE_TOKEN``, else git's credential helpers for the URL). ``timeout``: seconds to wait
    for the server's next bytes before the call fails. Threads may share one.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 300.0) -> None:
        # Not Store.__init__: there is no object database or ref backend on this side.
        import urllib3

        parsed = urllib.parse.urlsplit(url)
        scheme = parsed.scheme.lower()
        if scheme not in ("http", "https"):
            raise UsageError(
                f"{redact_url(url)}: a served store is http:// or https:// (for a store on this "
                "machine give its path)"
            )
        if not parsed.hostname:
            raise UsageError(f"{redact_url(url)}: the URL names no host")
        if parsed.username is not None or parsed.password is not None:
            raise UsageError(
                "refusing a store URL that holds credentials: give the token with token=, "
                f"{TOKEN_ENV}, or git's credential helper"
            )
        if parsed.query or parsed.fragment:
            # Not echoed: a query is where people put tokens.
            raise UsageError("a store URL has no ?query or #fragment")
        self.url = urllib.parse.urlunsplit((scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))
        self.path = None
        secret = _token(self.url, token)
        self._headers = {"User-Agent": "gitstore", "Accept": "application/json"}
        if secret:
            self._headers["Authorization"] = f"Bearer {secret}"
        self._http = urllib3.PoolManager(
            maxsize=8,
            timeout=urllib3.Timeout(connect=min(timeout, 30.0), read=timeout),
            retries=False,
        )

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def __getattr__(self, name: str) -> NoReturn:
        # Only reached for attributes this object does not have: Store's internals (_objects,
        # _refs, _manifest ...), which callers such as push or bundle reach into. Say what is
        # wrong instead of an AttributeError from deep inside them.
        if (name.startswith("_") and not name.startswith("__")) or name in _LOCAL_ATTRIBUTES:
            raise UsageError(
                f"{self.url} is a served store: this needs the store's files on this machine "
                "(run it where the store is, or pull from the server into a local store)"
            )
        raise AttributeError(name)

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        token: str | None = None,
    ) -> Store:
        """:meth:`Store.open`: a URL opens an HttpStore, a path a store on this machine."""
        return Store.open(path, create=create, token=token)

    @classmethod
    def memory(cls) -> Store:
        """:meth:`Store.memory`: an in-memory store (not a served one)."""
        return Store.memory()

    def close(self) -> None:
        """Close the connections to the server. The store may not be used afterwards."""
        self._http.clear()

    # -- writing -------------------------------------------------------------------------------

    def put_many(
        self, items: Iterable[tuple[str, Mapping[str, Source | Artifact]]], **keywords: Any
    ) -> list[Version]:
        """:meth:`Store.put_many`: one request per item, in order (the server lands each one
        as it arrives; concurrent requests may share its group commit)."""
        return [self.put(address, artifacts, **keywords) for address, artifacts in items]

    def batch(self) -> PutBatch:
        """:meth:`Store.batch`: on a served store each ``b.put`` is sent at once, so its
        PendingPut is done at once and the version is visible before the block ends."""
        return PutBatch(lambda a, x, kw: self.put(a, x, **kw), list)

    def put(
        self,
        address: str,
        artifacts: Mapping[str, Source | Artifact],
        *,
        run_id: str | None = None,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        replace: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        mask_secrets: bool | Masker = False,
        follow_symlinks: bool = False,
    ) -> Version:
        """:meth:`Store.put`, sent as one streaming upload (see the module's notes).

        Everything :meth:`Store.check_put` checks is checked here before anything is sent. With
        ``mask_secrets``, the bytes and fields are masked on this side, before they leave.
        """
        spec, task, inputs = prepare(
            address, artifacts, content_type, tags, metadata, follow_symlinks
        )
        masker = Masker() if mask_secrets is True else (mask_secrets or None)
        with contextlib.ExitStack() as spools:
            if masker is not None:
                message, metadata = mask_fields(masker, run_id, message, metadata, inputs)
                for item in inputs:
                    if item.masked_secrets is None:
                        _mask_into_spool(item, masker, spools)
            fields = [("run_id", run_id), ("message", message)]
            if metadata is not None:
                fields.append(("metadata", json.dumps(dict(metadata))))
            fields += [
                ("replace", "true" if replace else None),
                ("force", "true" if force else None),
            ]
            boundary = f"gitstore-{uuid.uuid4().hex}"
            body = _multipart(
                boundary, [(k, v) for k, v in fields if v is not None], inputs, progress
            )
            doc = self._json(
                "POST",
                f"{_task_path(spec, task)}/versions",
                body=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        return _decode(doc, Version)

    def rm(
        self,
        address: str,
        names: Sequence[str],
        *,
        run_id: str | None = None,
        message: str | None = None,
    ) -> Version:
        """:meth:`Store.rm` on the server."""
        addr = _names.parse_address(address, need_task=True, allow_rev=False)
        assert addr.task is not None
        if not names:
            raise UsageError("rm needs at least one artifact name")
        for n in names:
            _names.check_artifact_name(n)
        query: list[tuple[str, str]] = [("name", n) for n in names]
        query += [(k, v) for k, v in (("run_id", run_id), ("message", message)) if v is not None]
        doc = self._json("DELETE", f"{_task_path(addr.spec, addr.task)}/artifacts", query=query)
        return _decode(doc, Version)

    def rm_task(self, address: str, *, expect: str | None = None) -> str:
        """:meth:`Store.rm_task` on the server (``expect`` is sent as ``If-Match``)."""
        addr = _names.parse_address(address, need_task=True, allow_rev=False)
        assert addr.task is not None
        doc = self._json(
            "DELETE",
            _task_path(addr.spec, addr.task),
            headers={"If-Match": f'"{expect}"' if expect is not None else "*"},
        )
        return _decode(doc, TaskDeletion).commit

    # -- reading -------------------------------------------------------------------------------

    def specs(self) -> list[str]:
        """:meth:`Store.specs`."""
        return [s.name for s in self.spec_summaries()]

    def spec_summaries(self) -> list[SpecSummary]:
        """:meth:`Store.spec_summaries`."""
        return _decode(self._json("GET", "/specs"), list[SpecSummary])

    def task_heads(self, spec: str) -> list[TaskHead]:
        """:meth:`Store.task_heads`: NotFoundError when the spec has no task."""
        _names.check_component(spec, "spec")
        return _decode(self._json("GET", f"/specs/{_quote(spec)}/tasks"), list[TaskHead])

    def tasks(self, spec: str) -> list[str]:
        """:meth:`Store.tasks`: an empty list for a spec with no task."""
        try:
            return [h.task for h in self.task_heads(spec)]
        except NotFoundError:
            return []

    def heads(self, spec: str | None = None) -> dict[str, str]:
        """:meth:`Store.heads` (one request per spec)."""
        specs = [spec] if spec is not None else self.specs()
        out: dict[str, str] = {}
        for name in specs:
            try:
                out.update({f"{h.spec}/{h.task}": h.commit for h in self.task_heads(name)})
            except NotFoundError:
                continue  # no task (left meanwhile): nothing to list
        return dict(sorted(out.items()))

    def heads_in(self, scope: str | None = None) -> dict[str, str]:
        """:meth:`Store.heads_in`: NotFoundError for a spec with no task, TaskNotFoundError for
        a task with no version."""
        if scope is None:
            return self.heads()
        addr = _names.parse_address(scope, allow_rev=False)
        if addr.task is None:
            return {f"{h.spec}/{h.task}": h.commit for h in self.task_heads(addr.spec)}
        return {f"{addr.spec}/{addr.task}": self.show(scope).commit}

    def show(self, address: str) -> Version:
        """:meth:`Store.show`."""
        addr = _names.parse_address(address, need_task=True)
        assert addr.task is not None
        return _decode(self._json("GET", _version_path(addr)), Version)

    def log(self, address: str, *, limit: int | None = None) -> list[Version]:
        """:meth:`Store.log`, each version with its artifacts."""
        addr = _names.parse_address(address, need_task=True)
        assert addr.task is not None
        query = [("artifacts", "true")]
        if addr.rev.kind != "latest":
            query.append(("rev", str(addr.rev)))
        if limit is not None:
            if limit < 1:
                return []  # what Store.log's slice gives
            query.append(("limit", str(limit)))
        doc = self._json("GET", f"{_task_path(addr.spec, addr.task)}/versions", query=query)
        return _decode(doc, list[Version])

    def iter_versions(self, address: str) -> Iterator[Version]:
        """:meth:`Store.iter_versions`: one request per version, as the caller reads on."""
        addr = _names.parse_address(address, need_task=True)
        version: Version | None = self.show(address)
        while version is not None:
            yield version
            parent = version.parents[0] if version.parents else None
            version = self.show(f"{addr.spec}/{addr.task}@{parent}") if parent else None

    def diff(self, old: str, new: str | None = None) -> Diff:
        """:meth:`Store.diff`: the server compares, then both versions are read."""
        _names.parse_address(old, need_task=True)
        query = [("old", old)]
        if new is not None:
            _names.parse_address(new, need_task=True)
            query.append(("new", new))
        doc = _decode(self._json("GET", "/diff", query=query), _DiffDoc)
        return Diff(
            self.show(f"{doc.old.spec}/{doc.old.task}@{doc.old.commit}"),
            self.show(f"{doc.new.spec}/{doc.new.task}@{doc.new.commit}"),
            tuple(doc.added),
            tuple(doc.removed),
            tuple(doc.changed),
        )

    def find(
        self,
        *,
        run: str | None = None,
        tags: Mapping[str, str] | None = None,
        content_type: str | None = None,
        pattern: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        artifacts: bool = True,
    ) -> list[Version]:
        """:func:`gitstore.find` answered by the server's index (``find(store, ...)`` calls
        this for a served store); with ``artifacts``, each hit is then read whole."""
        if limit is not None and limit < 1:
            raise UsageError("limit must be at least 1")
        query = [
            (key, value)
            for key, value in (
                ("run", run),
                ("type", content_type),
                ("task", pattern),
                ("since", since),
                ("until", until),
                ("limit", str(limit) if limit is not None else None),
            )
            if value is not None
        ]
        query += [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
        docs = self._json("GET", "/find", query=query)
        if isinstance(docs, list):
            # Answered from the index: versions without their artifacts (artifacts=()).
            docs = [{"artifacts": [], **d} if isinstance(d, dict) else d for d in docs]
        found = _decode(docs, list[Version])
        if not artifacts:
            return found
        return [self.show(v.address) for v in found]

    def artifact(self, target: str, name: str | None = None) -> ArtifactInfo:
        """:meth:`Store.artifact`."""
        if target.startswith(_names.URI_SCHEME):
            if name is not None:
                raise UsageError("give either a gitstore:// URI or an address and a name, not both")
            return self.resolve(target)
        _names.parse_address(target, need_task=True)
        if name is None:
            raise UsageError(f"{target}: which artifact? (give a name)")
        _names.check_artifact_name(name)
        return self.show(target).artifact(name)

    def resolve(self, uri: str) -> ArtifactInfo:
        """:meth:`Store.resolve`."""
        _names.parse_uri(uri)
        return _decode(self._json("GET", "/resolve", query=[("uri", uri)]), ArtifactInfo)

    def get(self, target: str, name: str | None = None, *, verify: bool = False) -> bytes:
        """:meth:`Store.get`."""
        with self.open_artifact(target, name, verify=verify) as f:
            return f.read()

    def text(self, target: str, name: str | None = None, *, encoding: str = "utf-8") -> str:
        """:meth:`Store.text`."""
        return super().text(target, name, encoding=encoding)

    def json(self, target: str, name: str | None = None) -> Any:
        """:meth:`Store.json`."""
        return super().json(target, name)

    def open_artifact(
        self, target: str, name: str | None = None, *, verify: bool = False
    ) -> BlobReader:
        """:meth:`Store.open_artifact`: a reader over the response, 1 MiB at a time.

        The size is always checked at the end (a response cut short is an error, never a short
        artifact); with ``verify=True`` the sha256 the version records is too.
        """
        if target.startswith(_names.URI_SCHEME):
            if name is not None:
                raise UsageError("give either a gitstore:// URI or an address and a name, not both")
            uri = _names.parse_uri(target)
            addr = _names.Address(uri.spec, uri.task, uri.rev)
            name = uri.name
        else:
            addr = _names.parse_address(target, need_task=True)
            if name is None:
                raise UsageError(f"{target}: which artifact? (give a name)")
            _names.check_artifact_name(name)
        where = f"{_version_path(addr)}/artifacts/{_quote(name, safe='/')}"
        response = self._request("GET", where, stream=True)
        try:
            oid = response.headers.get("ETag", "").strip('"')
            sha256 = response.headers.get("X-Gitstore-Sha256", "")
            size = int(response.headers["Content-Length"])
        except (KeyError, ValueError):
            response.release_conn()
            raise NotAStoreError(f"{self.url}: the artifact's answer lacks its size") from None
        return BlobReader(
            oid,
            size,
            self._body_chunks(response),
            closer=response.release_conn,
            expect_sha256=sha256 if verify else None,
        )

    def export(
        self,
        address: str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        names: Sequence[str] | None = None,
    ) -> list[str]:
        """:meth:`Store.export` of a served version into folder ``dest`` here, with the same
        checks before anything is written and the same whole-or-absent files."""
        version = pick(self.show(address), names)
        root = os.path.abspath(os.fspath(dest))
        if os.path.exists(root) and not os.path.isdir(root):
            raise UsageError(f"{root} exists and is not a folder")
        written = []
        for art, target in export_plan(version, root):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self._save(art, target, verify=False, progress=progress)
            written.append(target)
        return written

    def save_artifact(
        self,
        target: str,
        dest: str | os.PathLike[str],
        name: str | None = None,
        *,
        verify: bool = False,
        progress: Progress | None = None,
    ) -> ArtifactInfo:
        """:meth:`Store.save_artifact` of a served artifact into file ``dest`` here, whole or
        not at all."""
        info = self.artifact(target, name)
        self._save(info, os.fspath(dest), verify=verify, progress=progress)
        return info

    def _save(
        self, art: ArtifactInfo, target: str, *, verify: bool, progress: Progress | None
    ) -> None:
        # Through the pinned URI: the bytes are those of the version ``art`` describes.
        mode = 0o755 if art.executable else 0o644
        with (
            atomic_write(target, mode=mode) as out,
            self.open_artifact(art.uri, verify=verify) as src,
        ):
            for chunk in src.iter_chunks():
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))

    # -- what needs the store's files ----------------------------------------------------------

    def verify(self, scope: str | None = None) -> list[Problem]:
        """Refused: verify reads every object of the store, on the machine that holds it."""
        self._local_only("verify")

    def scan(
        self, scope: str | None = None, *, masker: Masker | None = None
    ) -> list[SecretFinding]:
        """Refused: scan reads every blob and raw commit, on the machine that holds them."""
        self._local_only("scan")

    def gc(self, *, prune_after: float = 14 * 86400, dry_run: bool = False) -> GcReport:
        """Refused: gc cleans the store's files, on the machine that holds them."""
        self._local_only("gc")

    def du(self, scope: str | None = None) -> DiskUsage:
        """Refused: du measures the store's files, on the machine that holds them."""
        self._local_only("du")

    def alias(self, address: str, name: str) -> Alias:
        """Refused: aliases are set where the store is (``SPEC/TASK@NAME`` reads work here)."""
        self._local_only("alias")

    def unalias(self, address: str, name: str) -> Alias:
        """Refused, as :meth:`alias`."""
        self._local_only("alias")

    def aliases(self, scope: str | None = None) -> list[Alias]:
        """Refused, as :meth:`alias`."""
        self._local_only("alias")

    def retain(self, scope: Sequence[str] = (), **rules: Any) -> RetainPlan:
        """Refused: retention rewrites the store's chains, on the machine that holds them."""
        self._local_only("retain")

    def expunge(self, oids: Iterable[str], *, wait: float = 120.0) -> ExpungeReport:
        """Refused: expunge rewrites the store's files, on the machine that holds them."""
        self._local_only("expunge")

    def purge(
        self,
        target: str | None = None,
        name: str | None = None,
        *,
        blob: str | None = None,
        sha256: str | None = None,
        replace_with: str | None = None,
        why: str = "",
        apply: bool = False,
    ) -> PurgeReport:
        """Refused: purge rewrites histories and expunges objects, on the machine that holds
        them (and it must: the bytes are on its disk)."""
        self._local_only("purge")

    def _local_only(self, operation: str) -> NoReturn:
        raise UsageError(
            f"{operation} needs a store on this machine; {self.url} is a served store "
            f"(run gitstore {operation} where the store is)"
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Iterable[bytes] | None = None,
    ) -> Any:
        """The JSON document a request answers."""
        response = self._request(method, path, query=query, headers=headers, body=body)
        try:
            return json.loads(response.data)
        except ValueError:
            raise NotAStoreError(
                f"{self.url}: the answer to {method} {path} is not JSON (is this a gitstore "
                "server?)"
            ) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Iterable[bytes] | None = None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; raise the library's error for anything but a 2xx answer."""
        import urllib3

        url = self.url + API + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query))
        try:
            response = self._http.request(
                method,
                url,
                headers={**self._headers, **(headers or {})},
                body=body,
                chunked=body is not None,
                preload_content=not stream,
                decode_content=False,
                redirect=False,
                # Only a request without a body is safe to send twice (a body is a stream).
                retries=urllib3.Retry(total=2, read=0, status=0, redirect=0)
                if body is None and method == "GET"
                else False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise self._unreachable(e) from None
        except OSError as e:
            raise self._unreachable(e) from None
        if response.status >= 300:
            raise self._error(response, stream)
        return response

    def _body_chunks(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        import urllib3

        try:
            yield from response.stream(PIECE)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise self._unreachable(e) from None

    def _unreachable(self, e: BaseException) -> RemoteUnreachableError:
        return RemoteUnreachableError(f"{self.url}: cannot reach the server ({_reason(e)})")

    def _error(self, response: urllib3.BaseHTTPResponse, streamed: bool) -> GitstoreError:
        """The library error a failed response stands for (see the module's notes)."""
        import urllib3

        status = response.status
        try:
            doc = json.loads(response.read(_ERROR_BODY) if streamed else response.data)
        except (ValueError, OSError, urllib3.exceptions.HTTPError):
            doc = None
        finally:
            response.release_conn()
        if not isinstance(doc, dict):
            doc = {}
        detail = doc.get("detail") if isinstance(doc.get("detail"), str) else None
        cls = _ERROR_CLASSES.get(str(doc.get("error")))
        code = doc.get("exit_code")
        if cls is None and isinstance(code, int):
            cls = _BY_EXIT_CODE.get(code)
        if status in (401, 403):
            if cls is None or not issubclass(cls, RemoteAuthError):
                cls = RemoteAuthError
            return cls(f"{self.url}: {detail or 'the server refused the token'} (HTTP {status})")
        if cls is None or cls is GitstoreError:
            if detail is None:
                return NotAStoreError(
                    f"{self.url}: HTTP {status} without a gitstore error document (is this a "
                    "gitstore server?)"
                )
            return RemoteError(f"{self.url}: the server failed: {detail} (HTTP {status})")
        return cls(detail or f"HTTP {status}")


# -- helpers ---------------------------------------------------------------------------------


class _Side(msgspec.Struct):
    """One side of the server's diff document: which version it is."""

    spec: str
    task: str
    commit: str


class _DiffDoc(msgspec.Struct):
    """The server's diff document (``Diff.to_dict``): sides and names."""

    old: _Side
    new: _Side
    added: list[str]
    removed: list[str]
    changed: list[str]


def _decode(doc: Any, kind: type[T]) -> T:
    """``doc`` (the server's JSON) as ``kind``; NotAStoreError when it is not that shape."""
    try:
        return msgspec.convert(doc, kind)
    except msgspec.ValidationError as e:
        raise NotAStoreError(f"the server's answer is not the document expected: {e}") from None


def _token(url: str, given: str | None) -> str | None:
    """The token: ``given``, else ``$GITSTORE_TOKEN``, else git's credential helpers."""
    if given:
        return given
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    _, password = git_credential(url)
    return password or None


def _quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(text, safe=safe)


def _task_path(spec: str, task: str) -> str:
    return f"/tasks/{_quote(spec)}/{_quote(task)}"


def _version_path(addr: _names.Address) -> str:
    assert addr.task is not None
    rev = str(addr.rev) if addr.rev.kind != "latest" else "latest"
    return f"{_task_path(addr.spec, addr.task)}/versions/{_quote(rev)}"


def _reason(e: BaseException) -> str:
    """What the system said (``Connection refused``, ``Name or service not known``), found
    down urllib3's chain of wrapped errors; else the error's own text, on one line."""
    seen: BaseException | None = e
    for _ in range(10):  # a chain is short; never follow a cycle for ever
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        reason = getattr(seen, "reason", None)
        seen = seen.__cause__ or seen.__context__
        if seen is None and isinstance(reason, BaseException):
            seen = reason
    return " ".join(str(e).split())[:300] or type(e).__name__


def _mask_into_spool(item: Input, masker: Masker, spools: contextlib.ExitStack) -> None:
    """Mask ``item``'s bytes into an unnamed temp file, which it is sent from (bounded memory)."""
    try:
        src: IO[bytes]
        if item.data is not None:
            src = io.BytesIO(item.data)
        elif item.stream is not None:
            src = item.stream
        else:
            assert item.path is not None
            src = spools.enter_context(open(item.path, "rb"))  # noqa: SIM115 - spools closes it
        out = spools.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - spools closes it
        item.masked_secrets = masker.mask_content(src, out)
        out.seek(0)
    except OSError as e:
        raise InputError(f"{item.path or item.name}: {e.strerror or e}") from None
    item.data, item.path, item.stream = None, None, out


def _facts(item: Input) -> dict[str, Any]:
    """What a local put would record of ``item`` besides its bytes (see ``Store._store_blobs``)."""
    executable = item.executable
    if executable is None:
        executable = bool(item.stat.st_mode & 0o111) if item.stat is not None else False
    return Artifact(
        b"",
        content_type=item.content_type or guess_type(item.name),
        tags=item.tags,
        executable=executable,
        masked_secrets=item.masked_secrets,
        truncated=item.truncated,
    ).to_dict()


def _multipart(
    boundary: str,
    fields: Sequence[tuple[str, str]],
    inputs: Sequence[Input],
    progress: Progress | None,
) -> Iterator[bytes]:
    """The upload's body, produced as it is sent: fields, each file, then the files' facts with
    the sha256 of the bytes just sent."""
    facts = {item.name: _facts(item) for item in inputs}

    def pieces() -> Iterator[bytes]:
        for name, value in fields:
            yield _field_head(boundary, name) + value.encode("utf-8") + b"\r\n"
        for item in inputs:
            yield _file_head(boundary, item.name)
            digest = hashlib.sha256()
            for chunk in _read(item):
                digest.update(chunk)
                if progress is not None:
                    progress(len(chunk))
                yield chunk
            yield b"\r\n"
            facts[item.name]["sha256"] = f"sha256:{digest.hexdigest()}"
        yield _field_head(boundary, "artifacts") + json.dumps(facts).encode() + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return _coalesce(pieces())


def _field_head(boundary: str, name: str) -> bytes:
    return f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()


def _file_head(boundary: str, name: str) -> bytes:
    # filename* carries the exact name (RFC 5987, UTF-8); filename an ASCII stand-in.
    plain = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{plain}"; '
        f"filename*=UTF-8''{_quote(name)}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _read(item: Input) -> Iterator[bytes]:
    """``item``'s bytes, 1 MiB at a time (a file is checked against the size it had)."""
    if item.data is not None:
        view = memoryview(item.data)
        for i in range(0, len(view), PIECE):
            yield bytes(view[i : i + PIECE])
        return
    if item.stream is not None:
        while True:
            try:
                chunk = item.stream.read(PIECE)
            except OSError as e:
                raise InputError(f"{item.name}: reading the stream failed: {e}") from None
            if isinstance(chunk, str):
                raise UsageError("streams must be binary (open files with 'rb')")
            if not chunk:
                return
            yield chunk
    assert item.path is not None and item.stat is not None
    seen = 0
    try:
        with open(item.path, "rb") as f:
            while chunk := f.read(PIECE):
                seen += len(chunk)
                yield chunk
    except OSError as e:
        raise InputError(f"{item.path}: {e.strerror or e}") from None
    if seen != item.stat.st_size:
        raise InputError(f"{item.path}: changed while it was being stored")


def _coalesce(pieces: Iterable[bytes], size: int = PIECE) -> Iterator[bytes]:
    """Join small pieces (headers, small files) into chunks of up to ``size`` bytes: each chunk
    sent costs a write and its chunked framing."""
    buf = bytearray()
    for piece in pieces:
        if buf and len(buf) + len(piece) > size:
            yield bytes(buf)
            buf.clear()
        if len(piece) >= size:
            yield piece
        else:
            buf += piece
    if buf:
        yield bytes(buf)


def open_url(url: str, *, token: str | None = None) -> HttpStore:
    """The store served at ``url`` (what :meth:`gitstore.Store.open` returns for a URL)."""
    return HttpStore(url, token=token)
