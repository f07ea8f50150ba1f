"""The read-only web page: what agents did, for people, from the same store and the same tokens.

:func:`web_mount` is a Starlette ``Mount`` at ``/ui`` that :func:`~gitstore.server.create_app`
serves beside the API. Every page is a GET with a stable URL (a version's page names its commit),
rendered on the server from Jinja2 templates with autoescape on; the one script
(``static/web.js``) only adds conveniences (the tail of a big log, "load more" in place, search
within what is shown), and every page works without it. Nothing on the page writes to the store:
the only forms are searches (GET) and sign-in/sign-out, which touch the session alone.

Pages (under ``/ui``): ``/`` specs and recent versions (the ``find`` query as a form);
``/specs/SPEC`` its tasks with their latest version and status; ``/tasks/SPEC/TASK`` the history;
``.../versions/REV`` one version; ``.../versions/REV/artifacts/NAME`` one artifact rendered for
its kind (log, diff, test results, JSON, image, download); ``.../raw/NAME`` its bytes;
``.../lines/NAME`` a window of a log (the fragment "load more" fetches);
``/tasks/SPEC/TASK/compare?old=REV&new=REV`` two versions side by side; ``/go?to=...`` opens an
address or a ``gitstore://`` URI.

Like the rest of the server it uses only what ``gitstore`` exports; store calls and rendering run
in worker threads, never on the event loop.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import logging
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import anyio.to_thread
import jinja2
from markupsafe import Markup
from pygments.formatters import HtmlFormatter
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitstore import (
    FAILURE_NAME,
    TEST_NAME,
    ArtifactInfo,
    GitstoreError,
    NotFoundError,
    Store,
    UsageError,
    Version,
    __version__,
    find,
    parse_address,
    parse_uri,
)
from gitstore.server import render
from gitstore.server.auth import Access
from gitstore.server.blobs import artifact_response
from gitstore.server.errors import ForbiddenError, InvalidParameterError, status_of
from gitstore.server.logview import WINDOW, LogReader, Window
from gitstore.server.webauth import COOKIE, SESSION_SECONDS, LoginRequired, Sessions, Viewer
from gitstore.server.webauth import bounce_needed as _bounce_needed

__all__ = ["ROOT", "Urls", "Web", "web_mount"]

log = logging.getLogger("gitstore.server.web")
T = TypeVar("T")

ROOT = "/ui"
MAX_PARSE = 16 << 20  # test results, JSON and diffs bigger than this are shown as text
MAX_JSON = 8 << 20
MAX_COMPARE_BYTES = 2 << 20  # each side of a compared text
MAX_COMPARE_FILES = 20
MAX_LOGIN_BODY = 8 << 10
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "image/avif")
DIFF_TYPES = ("text/x-diff", "text/x-patch", "text/x-diff; charset=utf-8")
STATUS_WORDS = ("passed", "failed", "error")
HISTORY_LIMIT = 100
RECENT_LIMIT = 50
TASKS_PER_PAGE = 200

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "private, no-cache",
}


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _qpath(text: str) -> str:
    return urllib.parse.quote(text, safe="/")


@dataclasses.dataclass(frozen=True)
class Urls:
    """Every link the page makes, in one place (``root``: where the web page is mounted)."""

    root: str
    static_versions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def home(self, **query: str | Sequence[str] | None) -> str:
        """The home page, with ``find`` filters as query parameters."""
        pairs = [
            (k, v)
            for k, value in query.items()
            for v in ([value] if isinstance(value, str) else (value or []))
            if v
        ]
        return f"{self.root}/" + (f"?{urllib.parse.urlencode(pairs)}" if pairs else "")

    def login(self, next_url: str | None = None) -> str:
        """The login form; ``next_url`` is where it leads after."""
        return f"{self.root}/login" + (f"?next={_q(next_url)}" if next_url else "")

    def logout(self) -> str:
        """Where the sign-out form posts."""
        return f"{self.root}/logout"

    def static(self, name: str) -> str:
        """A static file, with its content's digest so browsers may cache it for good."""
        return f"{self.root}/static/{name}?v={self.static_versions.get(name, '0')}"

    def go(self) -> str:
        """The address/URI box's target."""
        return f"{self.root}/go"

    def spec(self, spec: str) -> str:
        """A spec's tasks."""
        return f"{self.root}/specs/{_q(spec)}"

    def task(self, spec: str, task: str) -> str:
        """A task's history."""
        return f"{self.root}/tasks/{_q(spec)}/{_q(task)}"

    def version(self, spec: str, task: str, rev: str) -> str:
        """One version (``rev``: a commit for a stable link)."""
        return f"{self.task(spec, task)}/versions/{_q(rev)}"

    def artifact(self, spec: str, task: str, rev: str, name: str) -> str:
        """An artifact, rendered for its kind."""
        return f"{self.version(spec, task, rev)}/artifacts/{_qpath(name)}"

    def raw(self, spec: str, task: str, rev: str, name: str) -> str:
        """An artifact's bytes (a download)."""
        return f"{self.version(spec, task, rev)}/raw/{_qpath(name)}"

    def lines(self, spec: str, task: str, rev: str, name: str, **query: int) -> str:
        """A window of a log as an HTML fragment."""
        qs = urllib.parse.urlencode(query)
        return f"{self.version(spec, task, rev)}/lines/{_qpath(name)}" + (f"?{qs}" if qs else "")

    def compare(self, spec: str, task: str, old: str | None = None, new: str | None = None) -> str:
        """Two versions of a task compared."""
        pairs = [(k, v) for k, v in (("old", old), ("new", new)) if v]
        qs = f"?{urllib.parse.urlencode(pairs)}" if pairs else ""
        return f"{self.task(spec, task)}/compare{qs}"

    def uri(self, uri: str) -> str | None:
        """The page of the artifact a ``gitstore://`` URI pins (None if it does not parse)."""
        try:
            parsed = parse_uri(uri)
        except GitstoreError:
            return None
        return self.artifact(parsed.spec, parsed.task, str(parsed.rev) or "latest", parsed.name)


# -- formatting helpers the templates use ------------------------------------------------------


def _when(iso: str | None) -> str:
    """``2026-11-30 11:50:02 UTC`` from the stored ISO time."""
    if not iso:
        return ""
    m = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)", iso)
    return f"{m.group(1)} {m.group(2)} UTC" if m else iso


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


def _shell_quote(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9@%+=:,./_-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


@dataclasses.dataclass
class _Status:
    word: str | None  # passed | failed | error | None
    detail: str


class _Lru(OrderedDict[str, T]):
    """A small least-recently-used map (commits never change, so entries never go stale)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or(self, key: str, make: Callable[[], T]) -> T:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


class Web:
    """The web page's state: store, sessions, templates, caches."""

    def __init__(self, store: Store, access: Access, root: str = ROOT) -> None:
        self.store = store
        self.sessions = Sessions(access)
        self.logs = LogReader()
        self.statuses: _Lru[_Status] = _Lru(20_000)
        # A parsed, highlighted diff by blob id: highlighting a 5,000-line diff takes ~1 s.
        self.diffs: _Lru[render.DiffView] = _Lru(8)
        self.static = _static_files()
        versions = {
            name: hashlib.sha256(body).hexdigest()[:12] for name, (body, _) in self.static.items()
        }
        self.urls = Urls(root, versions)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("gitstore.server", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            size=render.human_size,
            when=_when,
            short=lambda commit: commit[:12],
            first_line=_first_line,
            link=lambda text: render.linkify(str(text), self.urls.uri),
            visible=render.visible,
            sh=_shell_quote,
            tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False),
        )
        self.env.globals.update(u=self.urls, gitstore_version=__version__)

    def page(self, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        """A rendered page, answered with HTTP status ``code``."""
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=code)

    def streamed(self, template: str, **context: Any) -> StreamingResponse:
        """A page sent while it renders (big diffs: the first files arrive while later ones
        are still being highlighted). Starlette runs the iterator in a worker thread."""
        parts = self.env.get_template(template).generate(**context)
        return StreamingResponse(_in_pieces(parts), media_type="text/html; charset=utf-8")

    # -- statuses --------------------------------------------------------------------------

    def status(self, version: Version) -> _Status:
        """passed / failed / error from the version's test results and failure record."""
        return self.statuses.get_or(version.commit, lambda: self._status(version))

    def _status(self, version: Version) -> _Status:
        names = {a.name: a for a in version.artifacts}
        if FAILURE_NAME in names:
            doc = self.small_json(names[FAILURE_NAME])
            summary = render.failure_summary(doc)
            kind = summary["kind"] if summary else ""
            message = render.visible(summary["message"])[:200] if summary else ""
            return _Status("error", f"{kind}: {message}".strip(": "))
        if TEST_NAME in names and names[TEST_NAME].size <= MAX_PARSE:
            data = self.store.get(names[TEST_NAME].uri)
            report = render.parse_tests(data)
            if report is not None and report.status is not None:
                return _Status(report.status, report.summary)
        return _Status(None, "")

    def small_json(self, info: ArtifactInfo) -> object:
        """An artifact parsed as JSON; None if it is not JSON or too big to parse here."""
        if info.size > MAX_JSON:
            return None
        try:
            return json.loads(self.store.get(info.uri))
        except (ValueError, RecursionError):
            return None


def _in_pieces(parts: Iterator[str], size: int = 64 << 10) -> Iterator[bytes]:
    """Jinja's many small strings as fewer, bigger pieces; a failure ends the page visibly."""
    buffer: list[str] = []
    held = 0
    try:
        for part in parts:
            buffer.append(part)
            held += len(part)
            if held >= size:
                yield "".join(buffer).encode()
                buffer, held = [], 0
    except Exception:
        # The status line is sent: all that can be done is to say so at the end of the page.
        log.exception("rendering a streamed page failed")
        buffer.append(
            '<p class="error-detail" role="alert">The page could not be finished '
            "(see the server's log).</p>"
        )
    yield "".join(buffer).encode()


def _static_files() -> dict[str, tuple[bytes, str]]:
    files = importlib.resources.files("gitstore.server") / "static"
    out: dict[str, tuple[bytes, str]] = {}
    for name, ctype in (
        ("web.css", "text/css"),
        ("web.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ):
        out[name] = ((files / name).read_bytes(), ctype)
    formatter: Any = HtmlFormatter(style="default")
    light = "\n".join(formatter.get_token_style_defs(".hl"))
    dark_formatter: Any = HtmlFormatter(style="github-dark")
    dark = "\n".join(dark_formatter.get_token_style_defs(".hl"))
    css = f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
    out["pygments.css"] = (css.encode(), "text/css")
    return out


# -- plumbing: auth, threads, errors -----------------------------------------------------------

Page = Callable[[Request, Web, Viewer], Awaitable[Response]]


def _run(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    return anyio.to_thread.run_sync(fn, *args)


def _error_page(web: Web, exc: BaseException, viewer: Viewer | None) -> Response:
    status = status_of(exc)
    if isinstance(exc, GitstoreError):
        title, detail = type(exc).__name__, str(exc)
    else:
        title, detail = "InternalError", "internal error (see the server's log)"
    page = web.page("error.html", status, viewer=viewer, title=title, detail=detail, status=status)
    if status == 401:
        # Bearer, not Basic: a browser would answer Basic with its own password dialog.
        page.headers["WWW-Authenticate"] = 'Bearer realm="gitstore"'
    return page


def _page(handler: Page, web: Web) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        viewer: Viewer | None = None
        try:
            try:
                viewer = web.sessions.viewer(request.headers, request.cookies)
            except LoginRequired:
                if _bounce_needed(request.headers, request.cookies):
                    return web.page("bounce.html", viewer=None, target=_here(request))
                return RedirectResponse(web.urls.login(_here(request)), status_code=303)
            return await handler(request, web, viewer)
        except _Redirect as r:
            return RedirectResponse(r.location, status_code=303)
        except GitstoreError as e:
            return _error_page(web, e, viewer)
        except Exception as e:
            log.exception("%s %s failed", request.method, request.url.path)
            return _error_page(web, e, viewer)

    endpoint.__name__ = handler.__name__
    return endpoint


def _here(request: Request) -> str:
    """The request's path and query (where to come back to after signing in)."""
    # Under a Mount, Starlette keeps the whole path in "path" (root_path is its prefix).
    query = request.url.query
    return str(request.scope["path"]) + (f"?{query}" if query else "")


def _allow(viewer: Viewer, spec: str) -> None:
    if not viewer.sees(spec):
        assert viewer.token is not None
        raise ForbiddenError(
            f"token {viewer.token.name!r} is limited to specs {viewer.token.spec!r}, not {spec!r}"
        )


def _int_param(
    request: Request, name: str, default: int | None, most: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or (most is not None and int(raw) > most):
        bound = f" (at most {most})" if most is not None else ""
        raise InvalidParameterError(f"{name} {raw!r} must be a whole number{bound}")
    return int(raw)


def _address(request: Request, viewer: Viewer) -> tuple[str, str]:
    spec = request.path_params["spec"]
    task = request.path_params["task"]
    _allow(viewer, spec)
    return spec, task


def _rev_address(spec: str, task: str, rev: str) -> str:
    return f"{spec}/{task}" if rev == "latest" else f"{spec}/{task}@{rev}"


# -- pages -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Filters:
    """The home page's ``find`` form: each field as typed (empty: no condition)."""

    run: str = ""
    tag: str = ""
    type: str = ""
    task: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, request: Request) -> Filters:
        """The filters in a request's query."""
        params = request.query_params
        return cls(*(params.get(f.name, "").strip() for f in dataclasses.fields(cls)))

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}

    def tags(self) -> dict[str, str] | None:
        """``KEY=VALUE`` pairs, space separated (one artifact must carry them all)."""
        out = {}
        for item in self.tag.split():
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InvalidParameterError(f"tag {item!r} is not KEY=VALUE")
            out[key] = value
        return out or None


async def home(request: Request, web: Web, viewer: Viewer) -> Response:
    filters = Filters.of(request)
    limit = _int_param(request, "limit", RECENT_LIMIT, 1000) or RECENT_LIMIT

    def work() -> Response:
        specs = []
        for summary in web.store.spec_summaries():
            if not viewer.sees(summary.name):
                continue
            latest = find(web.store, pattern=summary.name, limit=1, artifacts=False)
            specs.append((summary, latest[0] if latest else None))
        error = None
        status = 200
        versions: list[Version] = []
        try:
            # A token limited to some specs sees only those: filter first, then cut.
            restricted = viewer.token is not None and viewer.token.spec is not None
            found = find(
                web.store,
                run=filters.run or None,
                tags=filters.tags(),
                content_type=filters.type or None,
                pattern=filters.task or None,
                since=filters.since or None,
                until=filters.until or None,
                limit=None if restricted else limit + 1,
                artifacts=False,
            )
            versions = [v for v in found if viewer.sees(v.spec)][: limit + 1]
        except GitstoreError as e:
            error, status = str(e), status_of(e)
        return web.page(
            "home.html",
            status,
            viewer=viewer,
            specs=specs,
            versions=versions[:limit],
            more=len(versions) > limit,
            limit=limit,
            filters=filters,
            error=error,
        )

    return await _run(work)


async def spec_page(request: Request, web: Web, viewer: Viewer) -> Response:
    spec = request.path_params["spec"]
    _allow(viewer, spec)
    page = _int_param(request, "page", 1) or 1

    def work() -> Response:
        heads = web.store.task_heads(spec)
        pages = max(1, -(-len(heads) // TASKS_PER_PAGE))
        shown = heads[(page - 1) * TASKS_PER_PAGE : page * TASKS_PER_PAGE]
        rows = []
        for head in shown:
            version = web.store.show(f"{spec}/{head.task}@{head.commit}")
            rows.append((version, web.status(version)))
        counts = {w: sum(1 for _, s in rows if s.word == w) for w in STATUS_WORDS}
        return web.page(
            "spec.html",
            viewer=viewer,
            spec=spec,
            rows=rows,
            total=len(heads),
            page=page,
            pages=pages,
            counts=counts,
        )

    return await _run(work)


async def task_page(request: Request, web: Web, viewer: Viewer) -> Response:
    spec, task = _address(request, viewer)
    show_all = request.query_params.get("all") == "1"

    def work() -> Response:
        versions = web.store.log(f"{spec}/{task}", limit=None if show_all else HISTORY_LIMIT + 1)
        more = not show_all and len(versions) > HISTORY_LIMIT
        versions = versions[:HISTORY_LIMIT] if more else versions
        numbers = {v.commit: v.version for v in versions}
        statuses = {v.commit: web.status(v) for v in versions}
        return web.page(
            "task.html",
            viewer=viewer,
            spec=spec,
            task=task,
            versions=versions,
            numbers=numbers,
            statuses=statuses,
            more=more,
        )

    return await _run(work)


def _parents(web: Web, version: Version) -> list[Version]:
    out = []
    for commit in version.parents:
        try:
            out.append(web.store.show(f"{version.spec}/{version.task}@{commit}"))
        except NotFoundError:
            continue
    return out


async def version_page(request: Request, web: Web, viewer: Viewer) -> Response:
    spec, task = _address(request, viewer)
    rev = request.path_params["rev"]

    def work() -> Response:
        version = web.store.show(_rev_address(spec, task, rev))
        tests = None
        names = {a.name: a for a in version.artifacts}
        if TEST_NAME in names and names[TEST_NAME].size <= MAX_PARSE:
            tests = render.parse_tests(web.store.get(names[TEST_NAME].uri))
        failure = None
        if FAILURE_NAME in names:
            failure = render.failure_summary(web.small_json(names[FAILURE_NAME]))
        return web.page(
            "version.html",
            viewer=viewer,
            v=version,
            parents=_parents(web, version),
            tests=tests,
            failure=failure,
            status=web.status(version),
            server=_server_url(request, web),
        )

    return await _run(work)


def _server_url(request: Request, web: Web) -> str:
    """The base URL of this server as the browser reached it (for the CLI command shown)."""
    url = f"{request.url.scheme}://{request.url.netloc}"
    prefix = str(request.scope.get("root_path", ""))
    if prefix.endswith(web.urls.root):
        prefix = prefix[: -len(web.urls.root)]
    return url + prefix


class _Redirect(Exception):
    """Raised by a page's worker to answer with a redirect (303) to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclasses.dataclass
class _LogView:
    """What the log template shows: windows and the gaps between them."""

    segments: list[dict[str, Any]]
    size: int
    lines_total: int | None
    focused: bool = False  # one window asked for (a line, an offset), not the start and end


async def artifact_page(request: Request, web: Web, viewer: Viewer) -> Response:
    spec, task = _address(request, viewer)
    rev = request.path_params["rev"]
    name = request.path_params["name"]

    def work() -> Response:
        version = web.store.show(_rev_address(spec, task, rev))
        info = version.artifact(name)
        context: dict[str, Any] = {"viewer": viewer, "v": version, "a": info}
        kind, extra = _view(web, request, version, info)
        context.update(extra)
        if kind == "diff":
            return web.streamed("artifact.html", kind=kind, **context)
        return web.page("artifact.html", kind=kind, **context)

    return await _run(work)


def _kind_of(info: ArtifactInfo) -> str:
    ctype = info.content_type.split(";")[0].strip().lower()
    lower = info.name.lower()
    if ctype in IMAGE_TYPES:
        return "image"
    if info.name.rsplit("/", 1)[-1] == FAILURE_NAME:
        return "failure"
    if info.name.rsplit("/", 1)[-1] == TEST_NAME or lower.endswith(("junit.xml", ".junit.xml")):
        return "tests"
    if ctype in ("text/x-diff", "text/x-patch") or lower.endswith((".diff", ".patch")):
        return "diff"
    if ctype == "application/json" or ctype.endswith("+json") or lower.endswith(".json"):
        return "json"
    if lower.endswith(".xml") or ctype in ("application/xml", "text/xml"):
        return "xml"
    return "text"


def _view(
    web: Web, request: Request, version: Version, info: ArtifactInfo
) -> tuple[str, dict[str, Any]]:
    """The artifact's view kind and what its template needs."""
    kind = _kind_of(info)
    if kind == "image":
        return "image", {}
    if info.size == 0:
        return "empty", {}
    with web.store.open_artifact(info.uri) as f:
        head = f.read(min(info.size, 8000))
    if render.is_binary(head):
        return "binary", {}
    link = web.urls.uri
    if kind in ("tests", "xml") and info.size <= MAX_PARSE:
        data = web.store.get(info.uri)
        report = render.parse_tests(data)
        if report is not None:
            extra: dict[str, Any] = {"report": report}
            if kind == "tests" and not data.lstrip().startswith(b"<") and info.size <= MAX_JSON:
                extra["tree"] = _tree(data, link)
            return "tests", extra
        kind = "json" if kind == "tests" else "text"
    if kind == "failure" and info.size <= MAX_JSON:
        data = web.store.get(info.uri)
        tree = _tree(data, link)
        try:
            summary = render.failure_summary(json.loads(data))
        except (ValueError, RecursionError):
            summary = None
        if summary is not None:
            return "failure", {"failure": summary, "tree": tree}
        kind = "json"
    if kind == "json" and info.size <= MAX_JSON:
        tree = _tree(web.store.get(info.uri), link)
        if tree is not None:
            return "json", {"tree": tree}
    if kind == "diff" and info.size <= MAX_PARSE:
        diff = web.diffs.get_or(
            info.oid, lambda: render.parse_diff(web.store.get(info.uri).decode("utf-8", "replace"))
        )
        return "diff", {"diff": diff}
    return "log", {"log": _log_view(web, request, version, info)}


def _tree(data: bytes, link: render.UriLinker) -> tuple[Markup, bool] | None:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return render.json_tree(doc, link)


def _window_rows(window: Window, link: render.UriLinker) -> list[tuple[int, Markup]]:
    rows = []
    style = None
    for i, line in enumerate(window.lines()):
        html, style = render.render_line(line, link, style)
        rows.append((window.first_line + i, html))
    return rows


def _segment(window: Window, link: render.UriLinker) -> dict[str, Any]:
    return {"kind": "window", "w": window, "rows": _window_rows(window, link)}


def _gap(start: int, stop: int) -> dict[str, Any]:
    return {"kind": "gap", "start": start, "stop": stop}


def _log_view(web: Web, request: Request, version: Version, info: ArtifactInfo) -> _LogView:
    """Windows of a text artifact: the whole of a small one; else the head, then the tail."""
    params = request.query_params
    size = info.size
    key = info.oid
    link = web.urls.uri

    def opener() -> Any:
        return web.store.open_artifact(info.uri)

    if "goto" in params:
        # The go-to-line form: a redirect adds the fragment that scrolls to the line.
        line = _int_param(request, "goto", 1) or 1
        raise _Redirect(f"?line={line}#L{line}")
    if "start" in params or "before" in params or "line" in params:
        if "line" in params:
            line = _int_param(request, "line", 1) or 1
            w = web.logs.at_line(key, size, opener, line)
        elif "start" in params:
            w = web.logs.forward(key, size, opener, _int_param(request, "start", 0) or 0)
        else:
            w = web.logs.backward(key, size, opener, _int_param(request, "before", size) or 0)
        segments = []
        if w.start > 0:
            segments.append(_gap(0, w.start))
        segments.append(_segment(w, link))
        if w.stop < size:
            segments.append(_gap(w.stop, size))
        return _LogView(segments, size, w.lines_total, focused=True)
    head = web.logs.forward(key, size, opener, 0)
    segments = [_segment(head, link)]
    if head.stop >= size:
        return _LogView(segments, size, head.lines_total or len(head.lines()))
    if size <= 2 * WINDOW or web.logs.tail_cached(key):
        tail = web.logs.backward(key, size, opener, size, after=head.stop)
        if tail.start > head.stop:
            segments.append(_gap(head.stop, tail.start))
        segments.append(_segment(tail, link))
        return _LogView(segments, size, tail.lines_total)
    # The tail of a big log costs a pass over the whole blob: the page asks for it afterwards.
    segments.append(_gap(head.stop, size))
    segments.append({"kind": "lazy", "before": size, "after": head.stop})
    return _LogView(segments, size, None)


async def lines_fragment(request: Request, web: Web, viewer: Viewer) -> Response:
    """A window of a log as ``<tbody>`` rows (what "load more" and the lazy tail fetch)."""
    spec, task = _address(request, viewer)
    rev = request.path_params["rev"]
    name = request.path_params["name"]

    def work() -> Response:
        version = web.store.show(_rev_address(spec, task, rev))
        info = version.artifact(name)
        size = info.size

        def opener() -> Any:
            return web.store.open_artifact(info.uri)

        if "before" in request.query_params:
            before = _int_param(request, "before", size)
            after = _int_param(request, "after", None)
            w = web.logs.backward(info.oid, size, opener, before or 0, after)
        else:
            start = _int_param(request, "start", 0) or 0
            until = _int_param(request, "until", None)
            w = web.logs.forward(info.oid, size, opener, start, until)
        return web.page(
            "lines.html", viewer=viewer, v=version, a=info, seg=_segment(w, web.urls.uri)
        )

    return await _run(work)


async def raw(request: Request, web: Web, viewer: Viewer) -> Response:
    spec, task = _address(request, viewer)
    rev = request.path_params["rev"]
    name = request.path_params["name"]
    info = await _run(web.store.artifact, _rev_address(spec, task, rev), name)
    return artifact_response(
        request,
        info,
        lambda: web.store.open_artifact(info.uri),
        pinned=re.fullmatch(r"[0-9a-f]{40}", rev) is not None,
    )


@dataclasses.dataclass
class _Change:
    name: str
    old: ArtifactInfo | None
    new: ArtifactInfo | None
    diff: render.DiffView | None = None
    cut: bool = False
    note: str = ""


async def compare_page(request: Request, web: Web, viewer: Viewer) -> Response:
    spec, task = _address(request, viewer)
    old_rev = request.query_params.get("old", "")
    new_rev = request.query_params.get("new", "") or "latest"

    def work() -> Response:
        history = web.store.log(f"{spec}/{task}", limit=HISTORY_LIMIT)
        new = web.store.show(_rev_address(spec, task, new_rev))
        if old_rev:
            old = web.store.show(_rev_address(spec, task, old_rev))
        elif new.parents:
            old = web.store.show(f"{spec}/{task}@{new.parents[0]}")
        else:
            old = new
        diff = web.store.diff(old.address, new.address)
        changes = []
        for n in diff.added:
            changes.append(_Change(n, None, new.artifact(n)))
        for n in diff.removed:
            changes.append(_Change(n, old.artifact(n), None))
        texts = 0
        for n in diff.changed:
            change = _Change(n, old.artifact(n), new.artifact(n))
            texts += _text_change(web, change, texts)
            changes.append(change)
        changes.sort(key=lambda c: c.name)
        return web.streamed(
            "compare.html",
            viewer=viewer,
            spec=spec,
            task=task,
            old=old,
            new=new,
            changes=changes,
            history=history,
            same=old.commit == new.commit,
        )

    return await _run(work)


def _text_change(web: Web, change: _Change, done: int) -> int:
    """Fill in the line diff of a changed text artifact; 1 if one was made."""
    a, b = change.old, change.new
    assert a is not None and b is not None
    if a.oid == b.oid:
        change.note = "same bytes; type, tags or mode changed"
        return 0
    if done >= MAX_COMPARE_FILES:
        change.note = f"not compared: only the first {MAX_COMPARE_FILES} changed texts are"
        return 0
    if a.size > MAX_COMPARE_BYTES or b.size > MAX_COMPARE_BYTES:
        change.note = f"not compared line by line: over {render.human_size(MAX_COMPARE_BYTES)}"
        return 0
    old_bytes = web.store.get(a.uri)
    new_bytes = web.store.get(b.uri)
    if render.is_binary(old_bytes) or render.is_binary(new_bytes):
        change.note = "binary: not compared line by line"
        return 0
    text, cut = render.line_diff(
        old_bytes.decode("utf-8", "replace"),
        new_bytes.decode("utf-8", "replace"),
        change.name,
        change.name,
    )
    change.diff = render.parse_diff(text)
    change.cut = cut or change.diff.cut
    return 1


async def go(request: Request, web: Web, viewer: Viewer) -> Response:
    """Open what was pasted: a ``gitstore://`` URI, ``SPEC/TASK[@REV]`` or ``SPEC``."""
    target = (request.query_params.get("to") or "").strip()
    if not target:
        return RedirectResponse(web.urls.home(), status_code=303)
    if target.startswith("gitstore://"):
        href = web.urls.uri(target)
        if href is None:
            parse_uri(target)  # raises the reason
            raise UsageError(f"{target!r} is not a gitstore:// URI")
        return RedirectResponse(href, status_code=303)
    addr = parse_address(target)
    if addr.task is None:
        return RedirectResponse(web.urls.spec(addr.spec), status_code=303)
    if str(addr.rev):
        return RedirectResponse(web.urls.version(addr.spec, addr.task, str(addr.rev)), 303)
    return RedirectResponse(web.urls.task(addr.spec, addr.task), status_code=303)


# -- sign in and out ---------------------------------------------------------------------------


def _safe_next(web: Web, value: str | None) -> str:
    """Only a path of this web page: never another site (an open redirect)."""
    if (
        value
        and value.startswith(web.urls.root + "/")
        and not value.startswith("//")
        and "\\" not in value
        and not _CONTROL.search(value)
    ):
        return value
    return web.urls.home()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _same_origin(request: Request) -> bool:
    """False for a POST another site's page sent (its Origin names another host)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host")


async def login_form(request: Request, web: Web) -> Response:
    next_url = _safe_next(web, request.query_params.get("next"))
    return web.page(
        "login.html",
        viewer=None,
        next_url=next_url,
        error=None,
        needs_login=web.sessions.needs_login,
    )


async def login_post(request: Request, web: Web) -> Response:
    if not _same_origin(request):
        return _error_page(web, ForbiddenError("a sign-in from another site's page"), None)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return _error_page(web, InvalidParameterError("the sign-in form is too large"), None)
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    secret = (fields.get("token") or [""])[-1]
    next_url = _safe_next(web, (fields.get("next") or [""])[-1])
    token = await _run(web.sessions.login, secret)
    if token is None:
        refused = web.page(
            "login.html",
            401,
            viewer=None,
            next_url=next_url,
            error="That token is not known to this store.",
            needs_login=web.sessions.needs_login,
        )
        refused.headers["WWW-Authenticate"] = 'Bearer realm="gitstore"'
        return refused
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        web.sessions.issue(token),
        max_age=SESSION_SECONDS,
        path=web.urls.root,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


async def logout(request: Request, web: Web) -> Response:
    if not _same_origin(request):
        return _error_page(web, ForbiddenError("a sign-out from another site's page"), None)
    response = RedirectResponse(web.urls.login(), status_code=303)
    response.delete_cookie(
        COOKIE,
        path=web.urls.root,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def static(request: Request, web: Web) -> Response:
    name = request.path_params["name"]
    if name not in web.static:
        return _error_page(web, NotFoundError(f"no static file {name!r}"), None)
    body, ctype = web.static[name]
    return Response(
        body,
        media_type=ctype,
        headers={"cache-control": "public, max-age=31536000, immutable"},
    )


# -- the mount ---------------------------------------------------------------------------------


class _SecurityHeaders:
    """Adds the page's security headers to every response of the web page (unless it set its
    own, as artifact downloads do)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def web_mount(store: Store, access: Access, root: str = ROOT) -> Mount:
    """The web page as a Starlette Mount at ``root``, using ``access``'s token rules."""
    web = Web(store, access, root)

    def plain(
        fn: Callable[[Request, Web], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request, web)
            except Exception as e:
                log.exception("%s %s failed", request.method, request.url.path)
                return _error_page(web, e, None)

        return endpoint

    t = "/tasks/{spec}/{task}"
    v = f"{t}/versions/{{rev}}"
    routes = [
        Route("/", _page(home, web), methods=["GET"]),
        Route("/login", plain(login_form), methods=["GET"]),
        Route("/login", plain(login_post), methods=["POST"]),
        Route("/logout", plain(logout), methods=["POST"]),
        Route("/static/{name}", plain(static), methods=["GET"]),
        Route("/go", _page(go, web), methods=["GET"]),
        Route("/specs/{spec}", _page(spec_page, web), methods=["GET"]),
        Route(t, _page(task_page, web), methods=["GET"]),
        Route(f"{t}/compare", _page(compare_page, web), methods=["GET"]),
        Route(v, _page(version_page, web), methods=["GET"]),
        Route(f"{v}/artifacts/{{name:path}}", _page(artifact_page, web), methods=["GET"]),
        Route(f"{v}/raw/{{name:path}}", _page(raw, web), methods=["GET"]),
        Route(f"{v}/lines/{{name:path}}", _page(lines_fragment, web), methods=["GET"]),
    ]
    return Mount(root, routes=routes, middleware=[Middleware(_SecurityHeaders)])
