"""What the web page makes of artifact bytes: logs, diffs, test results, JSON, line diffs.

Pure functions, tested on crafted inputs; every test that feeds markup checks it comes out as
text (escaped), never as tags.
"""

from __future__ import annotations

import json

import pytest

from gitstore.server import render

# -- log lines ---------------------------------------------------------------------------------


def test_a_log_line_full_of_markup_is_escaped() -> None:
    html, _ = render.render_line(b"<script>alert(1)</script> & <b>x</b>")
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;x&lt;/b&gt;" in html


def test_ansi_colours_become_classes_and_other_sequences_vanish() -> None:
    line = b"\x1b[1;31mERROR\x1b[0m plain \x1b[2K\x1b[10Gmoved \x1b]0;title\x07done"
    html, _ = render.render_line(line)
    assert html == '<span class="a-f1 a-bold">ERROR</span> plain moved done'


def test_a_colour_set_on_one_line_holds_on_the_next_until_reset() -> None:
    first, style = render.render_line(b"\x1b[32mgreen starts")
    second, style = render.render_line(b"still green\x1b[0m then plain", style=style)
    assert first == '<span class="a-f2">green starts</span>'
    assert second == '<span class="a-f2">still green</span> then plain'


def test_256_and_rgb_colours_map_to_the_nearest_of_sixteen() -> None:
    html, _ = render.render_line(b"\x1b[38;5;196mred\x1b[0m \x1b[48;2;0;0;0mblack bg")
    assert '<span class="a-f9">red</span>' in html or '<span class="a-f1">red</span>' in html
    assert '<span class="a-b0">black bg</span>' in html


def test_a_carriage_return_shows_what_a_terminal_ends_with() -> None:
    html, _ = render.render_line(b"downloading 10%\rdownloading 55%\rdownloading 100%\r")
    assert html == "downloading 100%"


def test_control_characters_are_shown_as_symbols() -> None:
    html, _ = render.render_line(b"bell\x07 nul\x00 esc\x1b tab\tkept")
    assert html == "bell\u2407 nul\u2400 esc\u241b tab\tkept"


def test_bytes_that_are_not_utf8_show_as_replacement_characters() -> None:
    html, _ = render.render_line(b"caf\xe9 \xff")
    assert html == "caf\ufffd \ufffd"


def test_gitstore_uris_become_links_and_the_rest_stays_escaped() -> None:
    uri = "gitstore://plan/p1@" + "a" * 40 + "/notes/plan.md"
    html = render.linkify(f"<i>see</i> {uri}.", lambda u: "/ui/x?u=" + u[-7:])
    assert html == f'&lt;i&gt;see&lt;/i&gt; <a href="/ui/x?u=plan.md">{uri}</a>.'


def test_human_sizes_use_binary_units() -> None:
    assert [render.human_size(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


# -- diffs -------------------------------------------------------------------------------------

GIT_DIFF = """\
diff --git a/app/login.py b/app/login.py
index 3b18e51..a9c2f04 100644
--- a/app/login.py
+++ b/app/login.py
@@ -1,4 +1,5 @@ import os
 import hashlib
+import hmac
{space}
-def check(a, b):
+def check(a: str, b: str) -> bool:
     return a == b
diff --git a/docs/new.md b/docs/new.md
new file mode 100644
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1,2 @@
+# New
+<script>alert(1)</script>
\\ No newline at end of file
diff --git a/logo.png b/logo.png
Binary files a/logo.png and b/logo.png differ
""".format(space=" ")  # an empty context line is one space


def rendered(view: render.DiffView) -> list[render.FileDiff]:
    for f in view.files:
        f.rendered_hunks()
    return view.files


def test_a_git_diff_parses_into_files_hunks_and_numbered_lines() -> None:
    view = render.parse_diff(GIT_DIFF)
    files = rendered(view)
    assert [(f.path, f.status, f.added, f.removed) for f in files] == [
        ("app/login.py", "modified", 2, 1),
        ("docs/new.md", "added", 2, 0),
        ("logo.png", "binary", 0, 0),
    ]
    lines = files[0].hunks[0].lines
    assert [(dl.kind, dl.old, dl.new) for dl in lines] == [
        ("ctx", 1, 1),
        ("add", None, 2),
        ("ctx", 2, 3),
        ("del", 3, None),
        ("add", None, 4),
        ("ctx", 4, 5),
    ]
    assert files[1].hunks[0].lines[-1].kind == "note"
    assert (view.added, view.removed, view.cut) == (4, 1, False)


def test_a_diff_is_highlighted_where_the_language_is_known() -> None:
    files = rendered(render.parse_diff(GIT_DIFF))
    assert files[0].language == "Python"
    added = files[0].hunks[0].lines[1]
    assert added.html == (
        '<span class="kn">import</span><span class="w"> </span><span class="nn">hmac</span>'
    )


def test_markup_inside_a_diff_is_shown_as_text() -> None:
    files = rendered(render.parse_diff(GIT_DIFF))
    html = "".join(dl.html for h in files[1].hunks for dl in h.lines)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_removed_line_that_looks_like_a_file_header_stays_in_its_hunk() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,2 +1,1 @@\n--- not a header\n keep\n"
    (f,) = rendered(render.parse_diff(text))
    assert [(dl.kind, dl.text) for dl in f.hunks[0].lines] == [
        ("del", "-- not a header"),
        ("ctx", "keep"),
    ]


def test_a_plain_unified_diff_without_git_headers_parses() -> None:
    text = "--- old.txt\t2026-01-01\n+++ new.txt\t2026-01-02\n@@ -1 +1 @@\n-a\n+b\n"
    (f,) = rendered(render.parse_diff(text))
    assert (f.old, f.new, f.status, f.added, f.removed) == ("old.txt", "new.txt", "renamed", 1, 1)


def test_text_that_is_not_a_diff_becomes_a_preamble() -> None:
    view = render.parse_diff("just words\nno hunks\n")
    assert view.files == [] and view.preamble == ["just words", "no hunks"]


def test_a_diff_past_the_line_cap_is_cut_and_says_so() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,10 +1,10 @@\n" + " same\n" * 10
    view = render.parse_diff(text, max_lines=8)
    assert view.cut and view.lines == 8
    assert len(view.files[0].hunks[0].lines) == 5


def test_a_carriage_return_in_a_diff_line_keeps_the_lines_aligned() -> None:
    text = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-a = 1\r\n+b = '\rx'\n c = 3\n"
    (f,) = rendered(render.parse_diff(text))
    assert [dl.kind for dl in f.hunks[0].lines] == ["del", "add", "ctx"]
    assert "\u240d" in f.hunks[0].lines[1].html  # the lone \r, visible


def test_line_diff_of_two_texts_and_its_cap() -> None:
    text, cut = render.line_diff("a\nb\nc\n", "a\nB\nc\n", "f.txt", "f.txt")
    assert not cut
    (f,) = rendered(render.parse_diff(text))
    assert [(dl.kind, dl.text) for dl in f.hunks[0].lines] == [
        ("ctx", "a"),
        ("del", "b"),
        ("add", "B"),
        ("ctx", "c"),
    ]
    _, cut = render.line_diff("x\n" * 20, "y\n" * 20, "f", "f", max_lines=10)
    assert cut


# -- test results ------------------------------------------------------------------------------


def test_pytest_json_report_lists_failing_tests_first() -> None:
    doc = {
        "summary": {"passed": 2, "failed": 1, "skipped": 1, "total": 4},
        "tests": [
            {"nodeid": "t::a", "outcome": "passed", "call": {"duration": 0.5}},
            {"nodeid": "t::b", "outcome": "skipped"},
            {
                "nodeid": "t::c",
                "outcome": "failed",
                "call": {"outcome": "failed", "duration": 1.0, "longrepr": "assert 1 == 2"},
            },
            {"nodeid": "t::d", "outcome": "passed"},
        ],
    }
    report = render.parse_tests(json.dumps(doc).encode())
    assert report is not None
    assert report.source == "pytest-json-report"
    assert [(c.name, c.outcome) for c in report.cases] == [
        ("t::c", "failed"),
        ("t::b", "skipped"),
        ("t::a", "passed"),
        ("t::d", "passed"),
    ]
    assert report.cases[0].message == "assert 1 == 2" and report.cases[0].duration == 1.0
    assert report.summary == "1 failed, 2 passed, 1 skipped"
    assert report.status == "failed"


def test_a_plain_counts_dict_is_test_results() -> None:
    report = render.parse_tests(b'{"passed": 3, "failed": 0, "skipped": 1}')
    assert report is not None
    assert (report.counts, report.status, report.cases) == (
        {"passed": 3, "failed": 0, "skipped": 1},
        "passed",
        [],
    )


def test_lists_of_names_count_and_become_cases() -> None:
    report = render.parse_tests(b'{"passed": ["a", "b"], "failed": ["c"]}')
    assert report is not None
    assert report.counts == {"passed": 2, "failed": 1}
    assert [(c.name, c.outcome) for c in report.cases] == [
        ("c", "failed"),
        ("a", "passed"),
        ("b", "passed"),
    ]


def test_junit_xml_is_test_results() -> None:
    xml = b"""<?xml version="1.0"?>
    <testsuite name="s" tests="3"><testcase classname="m" name="ok" time="0.1"/>
    <testcase classname="m" name="bad"><failure message="boom">trace</failure></testcase>
    <testcase classname="m" name="later"><skipped/></testcase></testsuite>"""
    report = render.parse_tests(xml)
    assert report is not None and report.source == "JUnit XML"
    assert [(c.name, c.outcome) for c in report.cases] == [
        ("m::bad", "failed"),
        ("m::later", "skipped"),
        ("m::ok", "passed"),
    ]
    assert report.cases[0].message == "boom\ntrace"


def test_an_entity_expansion_bomb_is_not_test_results() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
        )
        + b']><testsuite><testcase name="&i;"/></testsuite>'
    )
    assert render.parse_tests(bomb) is None


@pytest.mark.parametrize(
    "data", [b"", b"{", b"[1, 2]", b'{"name": "x"}', b"<html></html>", b'"passed"']
)
def test_documents_without_results_are_not_test_results(data: bytes) -> None:
    assert render.parse_tests(data) is None


def test_a_failure_record_summary() -> None:
    doc = {"kind": "timeout", "type": "TimeoutError", "message": "slow", "traceback": "tb"}
    assert render.failure_summary(doc) == doc
    assert render.failure_summary(["not", "a", "record"]) is None


# -- JSON --------------------------------------------------------------------------------------


def test_json_is_a_tree_of_details_with_values_escaped() -> None:
    html, cut = render.json_tree({"<k>": ["<v>", 1, None, True, {}]})
    assert not cut
    assert "<k>" not in html and "<v>" not in html
    assert '<span class="j-key">&lt;k&gt;</span>' in html
    assert '<span class="j-s">"&lt;v&gt;"</span>' in html
    assert html.count("<details") == 2 and '<span class="j-p">{}</span>' in html


def test_a_huge_json_document_is_cut_and_says_so() -> None:
    html, cut = render.json_tree(list(range(render.MAX_JSON_NODES * 2)))
    assert cut
    assert html.count("<li>") <= render.MAX_JSON_NODES + 2


def test_json_nested_past_the_depth_cap_is_shown_as_compact_text() -> None:
    value: object = "bottom"
    for _ in range(render.MAX_JSON_DEPTH + 5):
        value = [value]
    html, _ = render.json_tree(value)
    assert html.count("<details") == render.MAX_JSON_DEPTH
    assert '<code class="j-deep">[[[[[&#34;bottom&#34;]]]]]</code>' in html
