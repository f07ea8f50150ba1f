"""The web page over HTTP, on a real ``gitstore serve``: sessions, tokens, headers, escaping.

A crawler follows every link of the page from home (as a person would click), so a page added
later is covered: every page answers 200, carries the security headers, offers no write, and
shows hostile names and content as text. What only a browser can tell (scripts that would run,
the page's look) is in test_web_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import webdata
from serving import make_token, serve
from webhelp import UI, Page, Site, crawl, site_in

from gitstore import Store, Tokens
from gitstore.server.auth import Access
from gitstore.server.webauth import COOKIE, SESSION_SECONDS, Sessions


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from site_in(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def pages(site: Site) -> dict[str, httpx.Response]:
    with site.session() as c:
        return crawl(c, f"{UI}/")


# -- signing in --------------------------------------------------------------------------------


def test_a_page_without_a_session_leads_to_the_login_form(site: Site) -> None:
    with site.client() as c:
        r = c.get(f"{UI}/specs/fix-login?page=1")
        assert r.status_code == 303
        assert r.headers["location"] == f"{UI}/login?next=%2Fui%2Fspecs%2Ffix-login%3Fpage%3D1"
        form = c.get(r.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text
        assert 'value="/ui/specs/fix-login?page=1"' in form.text


def test_signing_in_sets_a_strict_httponly_cookie_that_is_not_the_token(site: Site) -> None:
    with site.client() as c:
        r = c.post(f"{UI}/login", data={"token": site.tokens["read"], "next": f"{UI}/specs/plan"})
        assert r.status_code == 303 and r.headers["location"] == f"{UI}/specs/plan"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui", f"Max-Age={SESSION_SECONDS}"):
            assert attribute.lower() in cookie.lower()
        assert site.tokens["read"] not in cookie
        assert c.get(f"{UI}/specs/plan").status_code == 200


def test_an_unknown_token_is_refused_by_the_login_form(site: Site) -> None:
    with site.client() as c:
        r = c.post(f"{UI}/login", data={"token": "gst_not-a-token", "next": f"{UI}/"})
        assert r.status_code == 401
        assert "not known" in r.text and "set-cookie" not in r.headers
        assert c.get(f"{UI}/").status_code == 303


def test_removing_the_token_ends_its_sessions(site: Site) -> None:
    store = site.server.store
    secret = make_token(store, "short-lived", "read")
    with site.client() as c:
        c.post(f"{UI}/login", data={"token": secret})
        assert c.get(f"{UI}/").status_code == 200
        Tokens(store).remove("short-lived")
        assert c.get(f"{UI}/").status_code == 303


def test_a_forged_session_is_no_session(site: Site) -> None:
    with site.session() as c:
        value = c.cookies[COOKIE]
        payload, mac = value.split(".")
        c.cookies.clear()
        c.cookies.set(COOKIE, payload + "." + mac[::-1], path=UI)
        assert c.get(f"{UI}/").status_code == 303


def test_a_session_ends_after_its_time_and_with_the_server(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.git", create=True).close()
    tokens = Tokens(tmp_path / "s.git")
    token, _ = tokens.add("t", scope="read")
    sessions = Sessions(Access(tokens))
    value = sessions.issue(token, now=1000.0)
    assert sessions.check(value, now=1000.0 + SESSION_SECONDS - 1) == token
    assert sessions.check(value, now=1000.0 + SESSION_SECONDS + 1) is None
    assert Sessions(Access(tokens)).check(value, now=1000.0) is None  # another key


def test_signing_out_ends_the_session(site: Site) -> None:
    with site.session() as c:
        r = c.post(f"{UI}/logout")
        assert r.status_code == 303
        assert c.get(f"{UI}/").status_code == 303


def test_a_sign_in_posted_from_another_sites_page_is_refused(site: Site) -> None:
    with site.client() as c:
        r = c.post(
            f"{UI}/login",
            data={"token": site.tokens["read"]},
            headers={"Origin": "http://evil.example"},
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/ui/", "/api/v1/specs", "/ui\\evil"]
)
def test_signing_in_never_leads_off_the_page(site: Site, target: str) -> None:
    with site.client() as c:
        r = c.post(f"{UI}/login", data={"token": site.tokens["read"], "next": target})
        assert r.headers["location"] == f"{UI}/"


def test_a_link_followed_from_another_site_is_reloaded_from_this_one(site: Site) -> None:
    # A SameSite=Strict cookie is not sent when another site's link is followed; the page
    # reloads itself from this site, which then carries it (a browser test follows one).
    with site.client() as c:
        r = c.get(f"{UI}/specs/fix-login", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 200
        assert '<meta http-equiv="refresh" content="0;url=/ui/specs/fix-login">' in r.text
        again = c.get(f"{UI}/specs/fix-login", headers={"Sec-Fetch-Site": "same-origin"})
        assert again.status_code == 303


def test_the_apis_authorization_header_works_on_pages(site: Site) -> None:
    with site.client() as c:
        ok = c.get(f"{UI}/", headers={"Authorization": f"Bearer {site.tokens['read']}"})
        assert ok.status_code == 200 and "fix-login" in ok.text
        bad = c.get(f"{UI}/", headers={"Authorization": "Bearer gst_nope"})
        assert bad.status_code == 401 and "not known" in bad.text
        assert bad.headers["www-authenticate"] == 'Bearer realm="gitstore"'


def test_a_token_limited_to_some_specs_sees_only_those(site: Site) -> None:
    commit = str(site.facts["t1_v2"])
    with site.session("limited") as c:
        home = c.get(f"{UI}/")
        assert 'href="/ui/specs/fix-login"' in home.text
        assert 'href="/ui/specs/hostile"' not in home.text and "hostile/" not in home.text
        assert c.get(f"{UI}/tasks/fix-login/t1/versions/{commit}").status_code == 200
        for url in (
            f"{UI}/specs/hostile",
            f"{UI}/tasks/hostile/h1",
            f"{UI}/tasks/hostile/h1/versions/latest",
            f"{UI}/tasks/hostile/h1/versions/latest/raw/script.log",
            f"{UI}/tasks/hostile/h1/versions/latest/lines/script.log?start=0",
            f"{UI}/tasks/hostile/h1/compare",
        ):
            r = c.get(url)
            assert r.status_code == 403, url
            assert "limited to specs &#39;fix-*&#39;" in r.text


def test_a_server_that_lets_everyone_read_needs_no_sign_in(tmp_path: Path) -> None:
    store = tmp_path / "s.git"
    with Store.open(store, create=True) as s:
        s.put("open/t", {"a.txt": "hello\n"})
    make_token(store, "w", "write")
    for server in serve(tmp_path, "--public-read", store=store):
        with server.client() as c:
            assert c.get(f"{UI}/tasks/open/t").status_code == 200
            assert "no sign-in needed" in c.get(f"{UI}/login").text


# -- every page --------------------------------------------------------------------------------


def test_every_page_reached_by_links_answers(pages: dict[str, httpx.Response]) -> None:
    assert len(pages) > 60
    failed = {url: r.status_code for url, r in pages.items() if r.status_code != 200}
    assert failed == {}


def test_every_page_carries_the_security_headers(pages: dict[str, httpx.Response]) -> None:
    for url, r in pages.items():
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp, url
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["referrer-policy"] == "same-origin", url


def test_no_page_offers_a_write(pages: dict[str, httpx.Response]) -> None:
    for url, r in pages.items():
        page = Page(r.text)
        for form in page.forms:
            if form.get("method", "get").lower() == "post":
                # Signing out touches the session only, never the store.
                assert form["action"] == f"{UI}/logout", (url, form)
        assert not any(link.startswith("/api/") for link in page.links), url
        assert page.inline_handlers == [], url
        assert all(s.get("src", "").startswith(f"{UI}/static/") for s in page.scripts), url


def test_hostile_names_and_content_are_shown_as_text(pages: dict[str, httpx.Response]) -> None:
    hostile = {url: r for url, r in pages.items() if "/hostile/" in url}
    assert len(hostile) >= 5
    for url, r in hostile.items():
        body = r.text
        for raw in ("<script>alert", "<img src=x", "<iframe", "<b>run</b>"):
            assert raw not in body, (url, raw)
    version = next(r for u, r in hostile.items() if re.search(r"/versions/[0-9a-f]{40}$", u))
    assert "&lt;img src=x onerror=alert(1)&gt;" in version.text
    assert "&lt;script&gt;alert(&#39;message&#39;)&lt;/script&gt;" in version.text
    log = next(r for u, r in hostile.items() if u.endswith("/artifacts/script.log"))
    assert log.text.count("&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;") == 200


def test_a_version_page_shows_masked_secrets_and_truncation(site: Site) -> None:
    with site.session() as c:
        r = c.get(f"{UI}/tasks/fix-login/t6/versions/latest")
        assert "1 secret masked" in r.text
        assert "truncated: kept 64.0 KiB of 256.0 KiB" in r.text
        log = c.get(f"{UI}/tasks/fix-login/t6/versions/latest/artifacts/log.log")
        assert webdata.LEAKED not in log.text and "truncated on the way in" in log.text


def test_gitstore_uris_on_pages_are_links(site: Site) -> None:
    uri = str(site.facts["plan_uri"])
    commit = uri.split("@")[1].split("/")[0]
    with site.session() as c:
        r = c.get(f"{UI}/tasks/fix-login/t1/versions/{site.facts['t1_v2']}")
        assert (
            f'<a href="/ui/tasks/plan/p1/versions/{commit}/artifacts/plan.md">{uri}</a>' in r.text
        )


def test_a_version_page_shows_the_command_that_fetches_it(site: Site) -> None:
    commit = site.facts["t1_v2"]
    with site.session() as c:
        r = c.get(f"{UI}/tasks/fix-login/t1/versions/v2")
        assert f"export GITSTORE_DIR={site.server.url}" in r.text
        assert f"gitstore export fix-login/t1@{commit} t1-v2" in r.text


# -- particular pages --------------------------------------------------------------------------


def test_downloads_carry_the_artifacts_type_and_never_run(site: Site) -> None:
    with site.session() as c:
        png = c.get(f"{UI}/tasks/fix-login/t5/versions/latest/raw/screenshot.png")
        assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
        log = c.get(f"{UI}/tasks/hostile/h1/versions/latest/raw/script.log")
        assert log.headers["content-type"] == "text/plain"
        assert log.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in log.headers["content-security-policy"]
        assert log.text == webdata.HOSTILE_LOG


def test_the_open_box_goes_to_addresses_and_uris(site: Site) -> None:
    uri = str(site.facts["plan_uri"])
    with site.session() as c:
        for typed, where in (
            ("fix-login", f"{UI}/specs/fix-login"),
            ("fix-login/t1", f"{UI}/tasks/fix-login/t1"),
            ("fix-login/t1@v1", f"{UI}/tasks/fix-login/t1/versions/v1"),
            (
                uri,
                f"{UI}/tasks/plan/p1/versions/{uri.split('@')[1].split('/')[0]}/artifacts/plan.md",
            ),
        ):
            r = c.get(f"{UI}/go", params={"to": typed})
            assert (r.status_code, r.headers["location"]) == (303, where)
        bad = c.get(f"{UI}/go", params={"to": "../etc"})
        assert bad.status_code == 422 and "InvalidNameError" in bad.text


def test_missing_things_are_404_pages(site: Site) -> None:
    with site.session() as c:
        for url in (
            f"{UI}/specs/nope",
            f"{UI}/tasks/fix-login/nope",
            f"{UI}/tasks/fix-login/t1/versions/v99",
            f"{UI}/tasks/fix-login/t1/versions/latest/artifacts/nope.txt",
        ):
            r = c.get(url)
            assert r.status_code == 404, url
            assert r.headers["content-type"].startswith("text/html")


def test_a_bad_filter_says_what_is_wrong_on_the_home_page(site: Site) -> None:
    with site.session() as c:
        r = c.get(f"{UI}/", params={"since": "yesterday-ish"})
        assert r.status_code == 400 and "since" in r.text and 'role="alert"' in r.text
        found = c.get(f"{UI}/", params={"run": "run-42"})
        assert {"t1", "t2", "t4"} <= set(re.findall(r"/ui/tasks/fix-login/(t\d)\"", found.text))
        assert '/ui/tasks/fix-login/t5"' not in found.text


def test_a_big_logs_end_is_fetched_after_its_start(site: Site) -> None:
    with Store.open(site.server.store) as store:
        store.put("logs/fresh", {"big.log": webdata.big_log_text(webdata.BIG_LOG, seed=9)})
    with site.session() as c:
        page = c.get(f"{UI}/tasks/logs/fresh/versions/latest/artifacts/big.log")
        assert 'id="L1"' in page.text
        lazy = re.search(r'data-lazy="([^"]+)"', page.text)
        assert lazy is not None
        url = lazy.group(1).replace("&amp;", "&")
        end = c.get(url)
        assert end.status_code == 200 and end.text.startswith('<div class="win"')
        # Read to the end once, the end is part of the page from then on.
        again = c.get(f"{UI}/tasks/logs/fresh/versions/latest/artifacts/big.log")
        assert "data-lazy" not in again.text and end.text.strip() in again.text


def test_the_lines_of_a_log_come_in_windows_with_line_numbers(site: Site) -> None:
    size = int(str(site.facts["big_log_size"]))
    base = f"{UI}/tasks/logs/big/versions/latest"
    with site.session() as c:
        tail = c.get(f"{base}/lines/build.log", params={"before": size})
        numbers = [int(n) for n in re.findall(r'<div class="l" id="L(\d+)">', tail.text)]
        last = webdata.big_log_text(size).count(b"\n")
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert numbers[-1] in (last, last + 1)
        start = re.search(r'data-start="(\d+)"', tail.text)
        assert start is not None and int(start.group(1)) < size
        line = c.get(f"{base}/artifacts/build.log", params={"goto": "20000"})
        assert line.status_code == 303
        assert line.headers["location"] == "?line=20000#L20000"
        at = c.get(f"{base}/artifacts/build.log", params={"line": "20000"})
        assert 'id="L20000"' in at.text and 'id="L19990"' in at.text


def test_static_files_are_cached_for_good(site: Site) -> None:
    with site.session() as c:
        page = Page(c.get(f"{UI}/").text)
        (script,) = page.scripts
        r = c.get(script["src"])
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert "immutable" in r.headers["cache-control"]
        assert c.get(f"{UI}/static/nope.js").status_code == 404


def test_a_5000_line_diff_is_shown_whole(site: Site) -> None:
    diff = webdata.big_diff()
    hunk_lines = sum(
        1 for line in diff.splitlines() if line[:1] in " +-" and line[:4] not in ("--- ", "+++ ")
    )
    with site.session() as c:
        r = c.get(f"{UI}/tasks/diffs/big/versions/latest/artifacts/change.diff")
    assert r.status_code == 200 and hunk_lines >= 4500
    assert r.text.count('<tr class="d-') == hunk_lines
    assert "Cut after" not in r.text


def test_the_page_is_served_before_a_mount_that_takes_every_other_path() -> None:
    # Git's smart HTTP may be mounted at the base URL, taking every path the others leave.
    import anyio
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount

    from gitstore.server import create_app

    app = create_app(Store.memory(), mounts=[Mount("", app=PlainTextResponse("git"))])

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            return await client.get(f"{UI}/"), await client.get("/info/refs")

    home, git = anyio.run(ask)
    assert home.status_code == 303 and home.headers["location"].startswith(f"{UI}/login")
    assert git.text == "git"


def _web_routes() -> list[str]:
    """Every GET path of the web page, from the app itself (a page added later is covered)."""
    from starlette.routing import Mount

    from gitstore.server import create_app

    sample = {"spec": "fix-login", "task": "t1", "rev": "latest", "name": "log.log"}
    (mount,) = [r for r in create_app(Store.memory()).routes if isinstance(r, Mount)]
    out = []
    for route in mount.routes:
        if "GET" in (getattr(route, "methods", None) or ()):
            path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: sample[m.group(1)], route.path)
            out.append(mount.path + path)
    assert len(out) >= 10
    return out


@pytest.mark.parametrize("path", _web_routes())
def test_every_page_asks_a_stranger_to_sign_in(site: Site, path: str) -> None:
    with site.client() as c:
        r = c.get(path)
    if path == f"{UI}/login" or path.startswith(f"{UI}/static/"):
        assert r.status_code in (200, 404)  # the form itself, and the page's own files
    else:
        assert r.status_code == 303, r.text
        assert r.headers["location"].startswith(f"{UI}/login?next=")
