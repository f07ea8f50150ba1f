"""A live ``gitstore serve`` on the demo store (webdata.py) with tokens, for the web page's tests.

Shared by the HTTP tests (test_web_pages.py) and the browser tests (test_web_browser.py): the
site, an HTML reader for links and forms, and a crawler that follows the page's links.
"""

from __future__ import annotations

import contextlib
import html.parser
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import webdata
from serving import Server, make_token, serve

UI = "/ui"


class Site:
    """A server on the demo store with tokens: read, write, and read limited to ``fix-*``."""

    def __init__(self, server: Server, facts: dict[str, object], tokens: dict[str, str]) -> None:
        self.server = server
        self.facts = facts
        self.tokens = tokens

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=60, **kw)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def session(self, who: str = "read") -> Iterator[httpx.Client]:
        """A client signed in with the token ``who`` through the login form."""
        with self.client() as c:
            r = c.post(f"{UI}/login", data={"token": self.tokens[who], "next": f"{UI}/"})
            assert r.status_code == 303, r.text
            yield c


class Page(html.parser.HTMLParser):
    """Links, forms and scripts of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict[str, str]] = []
        self.buttons: list[str] = []
        self.scripts: list[dict[str, str]] = []
        self.inline_handlers: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.inline_handlers += [k for k in a if k.startswith("on")]
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "form":
            self.forms.append(a)
        elif tag == "button":
            self.buttons.append(a.get("type", "submit"))
        elif tag == "script":
            self.scripts.append(a)


def crawl(client: httpx.Client, start: str, limit: int = 400) -> dict[str, httpx.Response]:
    """Every page of the web page reachable from ``start`` by links (downloads not fetched)."""
    seen: dict[str, httpx.Response] = {}
    queue = [start]
    shapes: set[tuple[str, tuple[str, ...]]] = set()
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        r = client.get(url)
        seen[url] = r
        if "text/html" not in r.headers.get("content-type", ""):
            continue
        for href in Page(r.text).links:
            target = urllib.parse.urljoin(url, href).split("#")[0]
            parts = urllib.parse.urlsplit(target)
            if parts.netloc and parts.netloc != urllib.parse.urlsplit(str(client.base_url)).netloc:
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            # Each line of a log links to itself (?line=N): one page per shape of query will do.
            shape = (parts.path, tuple(sorted(urllib.parse.parse_qs(parts.query))))
            if shape in shapes or not path.startswith(f"{UI}/") or "/raw/" in path:
                continue
            shapes.add(shape)
            queue.append(path)
    return seen


def site_in(tmp: Path) -> Iterator[Site]:
    """Build the demo store in ``tmp``, make its tokens, serve it; yield the site, stop it."""
    facts = webdata.build(tmp)
    store = Path(str(facts["store"]))
    tokens = {
        "read": make_token(store, "reader", "read"),
        "write": make_token(store, "writer", "write"),
        "limited": make_token(store, "fixer", "read", spec="fix-*"),
    }
    for server in serve(tmp, store=store):
        yield Site(server, facts, tokens)
