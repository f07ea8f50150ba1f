"""The web page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright,
against a live ``gitstore serve`` on 127.0.0.1.

One browser for the module; each test gets a fresh context (no cookies) and signs in through
the login form as a person would. Every ``alert``/``confirm``/``prompt`` is recorded: hostile
content must never open one. Screenshots of the main pages go to ``test-output/web/`` (ignored by
git) to be looked at.

Without Chromium the module is skipped, except under CI (``CI`` set), where .ci/run installs it
and its absence is a failure.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import webdata
from webhelp import UI, Site, site_in

from gitstore import Store

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "web"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        Dialog,
        Page,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - the test extra installs it
    _missing("playwright is not installed (pip install -e '.[test]')")
if not os.access(CHROMIUM, os.X_OK):
    _missing(f"{CHROMIUM} is missing (apt-get install -y chromium fonts-liberation)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from site_in(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


class Person:
    """A browser tab of one person, with the dialogs any page opened."""

    def __init__(self, context: BrowserContext, site: Site) -> None:
        self.context = context
        self.site = site
        self.page = context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(30_000)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, path: str) -> Page:
        self.page.goto(self.site.server.url + path)
        return self.page

    def sign_in(self, who: str = "read") -> None:
        self.open(f"{UI}/")
        assert "/ui/login" in self.page.url
        self.page.get_by_label("Token").fill(self.site.tokens[who])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r"/ui/$"))

    def shot(self, name: str, full: bool = False) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


@pytest.fixture
def person(browser: Browser, site: Site) -> Iterator[Person]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    who = Person(context, site)
    yield who
    context.close()
    assert who.dialogs == [], "a page opened a dialog"
    assert who.errors == [], "a page's script failed"


def until(check: Callable[[], bool], seconds: float = 30) -> None:
    """Wait for ``check()`` (polled from here: the page's CSP forbids the eval that
    ``page.wait_for_function`` needs)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.05)


def rows(page: Page, selector: str = "div.lines div.win div.l[id]") -> list[int]:
    """The line numbers shown in a log, top to bottom."""
    return [int(x[1:]) for x in page.eval_on_selector_all(selector, "rs => rs.map(r => r.id)")]


# -- a person's way through the page -------------------------------------------------------------


def test_home_spec_task_version_log_and_diff(person: Person) -> None:
    person.sign_in()
    page = person.page
    assert page.get_by_role("heading", name="Specs").is_visible()
    person.shot("1-home")
    page.get_by_role("link", name="fix-login", exact=True).first.click()
    page.wait_for_url(re.compile(r"/ui/specs/fix-login$"))
    assert page.locator("tr", has_text="t2").get_by_text("error", exact=True).is_visible()
    assert page.locator("tr", has_text="t1").get_by_text("passed", exact=True).is_visible()
    person.shot("2-spec")
    page.get_by_role("link", name="t1", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/tasks/fix-login/t1$"))
    assert page.get_by_text("Second attempt: constant-time comparison").is_visible()
    person.shot("3-task")
    page.get_by_role("link", name="v1", exact=True).first.click()
    page.wait_for_url(re.compile(r"/versions/[0-9a-f]{40}$"))
    assert page.get_by_role("heading", name="fix-login/t1 v1").is_visible()
    assert page.get_by_text("1 skipped").first.is_visible()  # the tests' callout
    person.shot("4-version")
    page.get_by_role("link", name="log.log", exact=True).click()
    page.wait_for_url(re.compile(r"/artifacts/log\.log$"))
    assert rows(page)[:3] == [1, 2, 3]
    error = page.locator("#L50 .t")
    assert error.inner_text().startswith("ERROR step 50")
    assert error.locator("span.a-f1.a-bold").inner_text() == "ERROR"
    assert page.locator("#L13 .t").inner_text() == "downloading 100% (13 MB)"
    person.shot("5-log")
    page.go_back()
    page.get_by_role("link", name="diff.diff", exact=True).click()
    page.wait_for_url(re.compile(r"/artifacts/diff\.diff$"))
    assert page.locator("details.file summary").first.inner_text().startswith("modified")
    added = page.locator("tr.d-add").first
    assert added.locator("span[class]").count() > 0  # highlighted
    person.shot("6-diff")


def windows(page: Page) -> list[list[int]]:
    """The line numbers of each window of a log, top to bottom."""
    return page.eval_on_selector_all(
        "div.win",
        "ws => ws.map(w => [...w.querySelectorAll('div.l[id]')].map(r => Number(r.id.slice(1))))",
    )


def test_more_of_a_big_log_loads_in_both_directions_until_it_is_whole(
    person: Person, site: Site
) -> None:
    data = webdata.big_log_text(int(str(site.facts["big_log_size"])))
    last = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    person.sign_in()
    page = person.open(f"{UI}/tasks/logs/big/versions/latest/artifacts/build.log")
    until(lambda: page.locator("div.lazy").count() == 0)
    head, tail = windows(page)
    assert head == list(range(1, len(head) + 1))
    assert tail == list(range(tail[0], last + 1))
    person.shot("7-big-log")
    page.locator('a[data-more="down"]').click()
    until(lambda: page.locator("div.win").count() == 3)
    assert windows(page)[1][0] == head[-1] + 1
    page.locator('a[data-more="up"]').click()
    until(lambda: page.locator("div.win").count() == 4)
    assert windows(page)[2][-1] == tail[0] - 1
    # Keep loading until the gap closes: then every line is shown once, in order.
    for _ in range(40):
        if page.locator("div.gap").count() == 0:
            break
        count = page.locator("div.win").count()
        # By CSS, not by role (that computes the accessible name of every line's link), and an
        # event, not a pointer click (Playwright's wait for the link to hold still costs seconds
        # once tens of thousands of lines are shown; people do not wait for that).
        page.locator('a[data-more="down"]').dispatch_event("click")
        until(lambda n=count: page.locator("div.win").count() > n)
    assert page.locator("div.gap").count() == 0
    assert rows(page) == list(range(1, last + 1))


def test_search_marks_the_lines_shown_that_match(person: Person) -> None:
    person.sign_in()
    page = person.open(f"{UI}/tasks/fix-login/t1/versions/v1/artifacts/log.log")
    search = page.get_by_label("Search what is shown")
    search.fill("tool call failed")
    until(lambda: page.locator(".find-count").inner_text() != "")
    assert page.locator(".find-count").inner_text() == "8 lines"
    assert rows(page, "div.l.hit") == [50, 100, 150, 200, 250, 300, 350, 400]
    search.press("Enter")
    search.press("Enter")
    assert page.locator(".find-count").inner_text() == "2 of 8 lines"
    assert rows(page, "div.l.hit.current") == [100]
    person.shot("8-search")


def test_comparing_two_versions_of_a_task(person: Person, site: Site) -> None:
    person.sign_in()
    page = person.open(f"{UI}/tasks/fix-login/t1")
    page.get_by_label("Compare").select_option(str(site.facts["t1_v1"]))
    page.get_by_label("with").select_option(str(site.facts["t1_v2"]))
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r"/compare\?old="))
    changed = page.locator("table.changes tbody tr")
    assert changed.count() == 3
    assert changed.first.inner_text().split()[:2] == ["changed", "diff.diff"]
    detail = page.locator("section.change-detail", has_text="test.json")
    assert detail.locator("tr.d-del").count() > 0 and detail.locator("tr.d-add").count() > 0
    person.shot("9-compare")


def test_a_failing_test_comes_first_in_the_results(person: Person) -> None:
    person.sign_in()
    page = person.open(f"{UI}/tasks/fix-login/t1/versions/v1/artifacts/test.json")
    first = page.locator("table.cases tbody tr").first
    assert first.locator("td").first.inner_text() == "failed"
    assert "test_wrong_password_message" in first.inner_text()
    assert first.locator("details pre").is_visible()  # its failure, unfolded
    summary = page.locator(".tests .summary").inner_text()
    assert summary.startswith("2 failed 41 passed 1 skipped")
    person.shot("10-tests")


def test_json_folds_and_images_show(person: Person) -> None:
    person.sign_in()
    page = person.open(f"{UI}/tasks/fix-login/t5/versions/latest/artifacts/notes/summary.json")
    steps = page.locator("ul.json details:has(> summary:has-text('steps'))")
    items = steps.locator("> ul > li > details > summary")
    assert steps.get_attribute("open") is not None
    assert items.count() == 2 and items.first.is_visible()
    steps.locator("> summary").click()
    assert steps.get_attribute("open") is None
    assert not items.first.is_visible()
    person.shot("11-json")
    page = person.open(f"{UI}/tasks/fix-login/t5/versions/latest/artifacts/screenshot.png")
    width = page.eval_on_selector("figure.image img", "img => img.naturalWidth")
    assert width == 64
    page = person.open(f"{UI}/tasks/fix-login/t5/versions/latest/artifacts/model.bin")
    assert page.get_by_text("Binary content (16.0 KiB").is_visible()


def test_hostile_names_and_content_run_nothing_and_read_as_text(person: Person) -> None:
    person.sign_in()
    page = person.open(f"{UI}/tasks/hostile/h1/versions/latest")
    assert page.get_by_role("link", name="<img src=x onerror=alert(1)>", exact=True).is_visible()
    assert page.get_by_text("<script>alert('message')</script> fixed the <b>login</b>").is_visible()
    assert page.get_by_text("<script>alert('agent')</script>").is_visible()
    assert page.locator("img").count() == 0 and page.locator("iframe").count() == 0
    person.shot("12-hostile")
    page.get_by_role("link", name="<img src=x onerror=alert(1)>", exact=True).click()
    page.wait_for_url(re.compile(r"/artifacts/%3Cimg"))
    assert page.locator("h1").inner_text() == "<img src=x onerror=alert(1)>"
    page = person.open(f"{UI}/tasks/hostile/h1/versions/latest/artifacts/script.log")
    assert page.locator("#L1 .t").inner_text() == "<script>alert('log')</script>"
    assert page.locator("table.lines script").count() == 0
    page = person.open(f"{UI}/tasks/hostile/h1/versions/latest/artifacts/meta.json")
    assert page.get_by_text('"<img src=x onerror=alert(2)>"').is_visible()
    page.wait_for_timeout(300)  # a handler that would fire on load has had its chance


def test_a_read_only_session_sees_no_write_action(person: Person, site: Site) -> None:
    person.sign_in("read")
    for path in (
        f"{UI}/",
        f"{UI}/specs/fix-login",
        f"{UI}/tasks/fix-login/t1",
        f"{UI}/tasks/fix-login/t1/versions/latest",
        f"{UI}/tasks/fix-login/t1/versions/latest/artifacts/log.log",
        f"{UI}/tasks/fix-login/t1/compare",
    ):
        page = person.open(path)
        forms = page.eval_on_selector_all(
            "form", "fs => fs.map(f => [f.method, new URL(f.action).pathname])"
        )
        assert all(m == "get" or a == f"{UI}/logout" for m, a in forms), (path, forms)
        # The only controls: searches, pickers and signing out.
        buttons = page.eval_on_selector_all("button", "bs => bs.map(b => b.textContent.trim())")
        assert set(buttons) <= {"Open", "Find", "Compare", "Go", "↑", "↓", "Sign out"}, path
        assert page.locator("input[type=file], textarea, [contenteditable]").count() == 0
        assert page.get_by_text("reader").first.is_visible()


def test_a_link_from_another_site_opens_with_the_session(person: Person, site: Site) -> None:
    person.sign_in()
    # "localhost" and "127.0.0.1" are different sites: a link on one to the other is followed
    # without the SameSite=Strict cookie, as a link pasted in a chat would be.
    other = site.server.url.replace("127.0.0.1", "localhost")
    target = f"{site.server.url}{UI}/specs/fix-login"
    page = person.page
    page.goto(f"{other}{UI}/login")
    page.evaluate(
        "href => { const a = document.createElement('a'); a.href = href; a.id = 'away';"
        " a.textContent = 'away'; document.body.append(a); }",
        target,
    )
    page.click("#away")
    expect(page.get_by_role("heading", name="fix-login")).to_be_visible()
    assert page.url == target


def test_pages_fit_a_phone(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        who = Person(context, site)
        who.sign_in()
        for name, path in (
            ("13-phone-home", f"{UI}/"),
            ("14-phone-version", f"{UI}/tasks/fix-login/t1/versions/v1"),
            ("15-phone-log", f"{UI}/tasks/fix-login/t1/versions/v1/artifacts/log.log"),
        ):
            page = who.open(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
            who.shot(name)
    finally:
        context.close()


def test_the_page_works_without_javascript(browser: Browser, site: Site) -> None:
    with Store.open(site.server.store) as store:
        store.put("logs/nojs", {"big.log": webdata.big_log_text(webdata.BIG_LOG, seed=4)})
    context = browser.new_context(java_script_enabled=False)
    try:
        who = Person(context, site)
        who.sign_in()
        page = who.open(f"{UI}/tasks/logs/nojs/versions/latest/artifacts/big.log")
        assert page.locator("div.lazy").is_visible()  # without a script, it stays a link
        # Links found by CSS: by role, Playwright names each of the thousands of line links.
        page.locator("div.lazy a").click()
        page.wait_for_url(re.compile(r"\?before=\d+$"))
        numbers = rows(page)
        page.locator('a[data-more="up"]').click()
        page.wait_for_url(re.compile(r"\?before=\d+$"))
        assert rows(page)[-1] == numbers[0] - 1
        page.get_by_label("Line").fill("1234")
        page.get_by_role("button", name="Go").click()
        page.wait_for_url(re.compile(r"\?line=1234#L1234$"))
        assert page.locator("#L1234 .t").inner_text().startswith("00001234")
    finally:
        context.close()


def test_a_log_that_grew_a_task_later_is_shown(person: Person, site: Site) -> None:
    # The page reads the store as it is now: a version put while the server runs is there.
    with Store.open(site.server.store) as store:
        store.put("later/t", {"late.log": "\x1b[33mlate\x1b[0m line\n"}, run_id="run-later")
    person.sign_in()
    page = person.open(f"{UI}/?run=run-later")
    page.locator("#recent-h ~ .scroll").get_by_role("link", name="v1", exact=True).click()
    page.get_by_role("link", name="late.log", exact=True).click()
    assert page.locator("#L1 .t span.a-f3").inner_text() == "late"
