"""Names, addresses and URIs: every rule of gitstore.names, accepted and refused."""

from __future__ import annotations

import pytest

from gitstore import GitstoreError, InvalidNameError, artifact_uri, parse_address, parse_uri
from gitstore.names import (
    MAX_ARTIFACT_NAME_BYTES,
    MAX_REF_COMPONENT,
    Rev,
    check_artifact_name,
    check_component,
    parse_rev,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"

# -- specs and tasks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a", "0", "spec-1", "task_7", "v1.2.3", "A.b-c_d", "x" * MAX_REF_COMPONENT, "a.lockx"],
)
def test_component_accepts_ref_safe_names(value: str) -> None:
    assert check_component(value, "spec") == value


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("", "empty"),
        ("x" * (MAX_REF_COMPONENT + 1), "characters long"),
        (".hidden", "must start"),
        ("-dash", "must start"),
        ("_under", "must start"),
        ("a/b", "may only hold"),
        ("a b", "may only hold"),
        ("a@b", "may only hold"),
        ("a~1", "may only hold"),
        ("a:b", "may only hold"),
        ("a\nb", "may only hold"),
        ("é", "may only hold"),
        ("a..b", "'..'"),
        ("task.lock", "'.lock'"),
    ],
)
def test_component_refuses_and_names_the_rule(value: str, part: str) -> None:
    with pytest.raises(InvalidNameError, match="task") as err:
        check_component(value, "task")
    assert part in str(err.value)


def test_component_refuses_a_non_string() -> None:
    with pytest.raises(InvalidNameError, match="must be a string"):
        check_component(b"spec", "spec")  # type: ignore[arg-type]


def test_invalid_name_error_is_a_gitstore_error_and_a_value_error() -> None:
    with pytest.raises(GitstoreError):
        check_component("", "spec")
    with pytest.raises(ValueError):
        check_component("", "spec")


# -- artifact names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "log.log",
        "reports/coverage.xml",
        "a/b/c/d.txt",
        "with space.txt",
        "100%.txt",
        "ünïcödé/日本.md",
        ".hidden",
        "...",
        ".gitstorex",
        "x/.gitstore/y",
        "x.git",
        "a" * MAX_ARTIFACT_NAME_BYTES,
    ],
)
def test_artifact_name_accepts_relative_posix_paths(name: str) -> None:
    assert check_artifact_name(name) == name


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("", "empty"),
        ("a" * (MAX_ARTIFACT_NAME_BYTES + 1), "bytes long"),
        # 513 two-byte characters: under the limit in characters, over it in bytes.
        ("é" * 513, "bytes long"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("tab\there", "control character"),
        ("del\x7f", "control character"),
        ("a\\b", "backslash"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("./a", "'.' component"),
        ("a/./b", "'.' component"),
        ("../a", "'..' component"),
        ("a/../../b", "'..' component"),
        ("..", "'..' component"),
        (".git", "'.git'"),
        ("a/.git/config", "'.git'"),
        (".GIT/x", "'.git'"),
        (".Git", "'.git'"),
        (".git.", "'.git'"),
        (".git ", "'.git'"),
        (".gitstore/manifest.json", "reserved"),
        (".gitstore", "reserved"),
        ("a\udc80", "UTF-8"),
    ],
)
def test_artifact_name_refuses_and_names_the_rule(name: str, part: str) -> None:
    with pytest.raises(InvalidNameError) as err:
        check_artifact_name(name)
    assert part in str(err.value)


def test_artifact_name_refuses_a_non_string() -> None:
    with pytest.raises(InvalidNameError, match="must be a string"):
        check_artifact_name(b"log.log")  # type: ignore[arg-type]


def test_reserved_prefix_is_allowed_only_when_asked() -> None:
    assert check_artifact_name(".gitstore/manifest.json", allow_reserved=True)


# -- revisions and addresses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rev"),
    [
        ("v1", Rev("number", 1)),
        ("v42", Rev("number", 42)),
        ("~", Rev("back", 1)),
        ("~0", Rev("back", 0)),
        ("~3", Rev("back", 3)),
        ("abcd", Rev("commit", "abcd")),
        ("ABCDEF12", Rev("commit", "abcdef12")),
        (COMMIT, Rev("commit", COMMIT)),
    ],
)
def test_rev_parses_numbers_steps_back_and_commit_prefixes(text: str, rev: Rev) -> None:
    assert parse_rev(text) == rev


@pytest.mark.parametrize(
    "text", ["v0", "", "V3", "~x", "-1", "abc", COMMIT + "0", "HEAD", "latest", ".x", "a/b"]
)
def test_rev_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_rev(text)


def test_address_with_spec_only() -> None:
    addr = parse_address("spec")
    assert (addr.spec, addr.task, addr.rev.kind) == ("spec", None, "latest")


def test_address_with_spec_and_task_is_the_latest_version() -> None:
    addr = parse_address("spec/task")
    assert (addr.spec, addr.task, addr.rev.kind) == ("spec", "task", "latest")


@pytest.mark.parametrize(
    ("text", "rev"),
    [
        ("s/t@v3", Rev("number", 3)),
        ("s/t@~2", Rev("back", 2)),
        ("s/t@beef", Rev("commit", "beef")),
    ],
)
def test_address_carries_its_revision(text: str, rev: Rev) -> None:
    assert parse_address(text).rev == rev


@pytest.mark.parametrize("text", ["s/t", "s/t@v3", "s/t@~2", "s/t@beef", "s"])
def test_address_prints_as_it_was_written(text: str) -> None:
    assert str(parse_address(text)) == text


@pytest.mark.parametrize(
    ("text", "kwargs", "part"),
    [
        ("", {}, "empty"),
        ("spec", {"need_task": True}, "names no task"),
        ("spec@v1", {}, "needs SPEC/TASK"),
        ("s/t/u", {}, "more than SPEC/TASK"),
        ("s/t@v1", {"allow_rev": False}, "may not carry a revision"),
        ("s/", {}, "task is empty"),
        ("/t", {}, "spec is empty"),
        ("s/t.lock", {}, "'.lock'"),
        ("s/../t", {}, "more than SPEC/TASK"),
        ("s/t@", {}, "revision"),
    ],
)
def test_address_refusals_name_the_problem(text: str, kwargs: dict[str, bool], part: str) -> None:
    with pytest.raises(InvalidNameError) as err:
        parse_address(text, **kwargs)
    assert part in str(err.value)


# -- URIs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "log.log",
        "reports/coverage.xml",
        "with space.txt",
        "100%.txt",
        "%41 stays literal",
        "a@b#c?d&e=f",
        "ünïcödé/日本.md",
        "+plus+",
    ],
)
def test_uri_round_trips_the_name(name: str) -> None:
    uri = artifact_uri("spec", "task", COMMIT, name)
    parsed = parse_uri(uri)
    assert (parsed.spec, parsed.task, parsed.rev, parsed.name) == (
        "spec",
        "task",
        Rev("commit", COMMIT),
        name,
    )


def test_uri_encodes_spaces_and_percent_but_keeps_slashes() -> None:
    uri = artifact_uri("s", "t", COMMIT, "a b/100%")
    assert uri == f"gitstore://s/t@{COMMIT}/a%20b/100%25"


@pytest.mark.parametrize(
    "text",
    [
        "http://s/t@abcd/x",
        "gitstore://s/t",
        "gitstore://s/t@/x",
        "gitstore://s/t@abcd",
        "gitstore://s/t@abcd/",
        "gitstore://s@abcd/x",
        "gitstore://",
    ],
)
def test_uri_refuses_the_wrong_shape(text: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_uri(text)


@pytest.mark.parametrize(
    "text",
    [
        "gitstore://s/t@abcd/..%2Fetc%2Fpasswd",
        "gitstore://s/t@abcd/%2e%2e/x",
        "gitstore://s/t@abcd/%2Fetc",
        "gitstore://s/t@abcd/a%00b",
        "gitstore://s/t@abcd/.gitstore/manifest.json",
        "gitstore://s/t@abcd/a%5Cb",
        "gitstore://.s/t@abcd/x",
        "gitstore://s/t@xyz!/x",
    ],
)
def test_uri_refuses_hostile_parts_after_decoding(text: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_uri(text)


def test_uri_with_invalid_utf8_escape_is_an_invalid_name() -> None:
    # %ff decodes to no UTF-8 text: a refused URI, not a UnicodeDecodeError escaping as a bug.
    with pytest.raises(InvalidNameError):
        parse_uri("gitstore://s/t@abcd/%ff")
