"""Names and addresses: what gitstore accepts as a spec, task, artifact name, address or URI.

No crap in, no crap out: every name is checked here, before anything is written, and a refused name
raises :class:`~gitstore.errors.InvalidNameError` naming the offending part. The rules keep every
name a valid single Git ref component (specs, tasks) or a path that stock ``git fsck --strict``
accepts in a tree and that cannot escape a folder when exported (artifact names).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from gitstore.errors import InvalidNameError

__all__ = [
    "ALIASES_PREFIX",
    "MAX_ARTIFACT_NAME_BYTES",
    "MAX_REF_COMPONENT",
    "REFS_PREFIX",
    "RESERVED_PREFIX",
    "URI_SCHEME",
    "Address",
    "ArtifactURI",
    "Rev",
    "alias_ref",
    "artifact_uri",
    "check_alias",
    "check_artifact_name",
    "check_component",
    "is_component",
    "check_layout",
    "parse_address",
    "parse_rev",
    "parse_uri",
    "task_ref",
]

MAX_REF_COMPONENT = 128
MAX_ARTIFACT_NAME_BYTES = 1024
RESERVED_PREFIX = ".gitstore"
URI_SCHEME = "gitstore://"
# Every task ref lives below this prefix: refs/artifacts/<spec>/<task>.
REFS_PREFIX = "refs/artifacts/"
# Every alias lives below this prefix: refs/gitstore/aliases/<spec>/<task>/<name>.
ALIASES_PREFIX = "refs/gitstore/aliases/"

_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX = re.compile(r"[0-9a-f]{4,40}\Z")
# Words that read as a revision in git or here: an alias may not be one of them (any case).
_REVISION_WORDS = frozenset(
    {"head", "latest", "fetch_head", "orig_head", "merge_head", "cherry_pick_head", "stash"}
)


def check_component(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a valid spec or task name, else raise InvalidNameError.

    A spec or task becomes one component of ``refs/artifacts/<spec>/<task>``, so it must be a valid
    Git ref component and safe as a file name on every platform git runs on.
    """
    if not isinstance(value, str):
        raise InvalidNameError(f"{what} must be a string, not {type(value).__name__}")
    if value == "":
        raise InvalidNameError(f"{what} is empty")
    if len(value) > MAX_REF_COMPONENT:
        raise InvalidNameError(
            f"{what} {value[:20]!r}... is {len(value)} characters long "
            f"(at most {MAX_REF_COMPONENT})"
        )
    if not _COMPONENT.match(value):
        raise InvalidNameError(
            f"{what} {value!r} may only hold letters, digits, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    if ".." in value:
        raise InvalidNameError(f"{what} {value!r} contains '..'")
    if value.endswith(".lock"):
        raise InvalidNameError(f"{what} {value!r} ends with '.lock'")
    return value


# check_component's rules as one pattern: a listing asks them of every ref name.
_VALID_COMPONENT = re.compile(
    rf"(?!.*\.\.)(?!.*\.lock\Z)[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_REF_COMPONENT - 1}}}\Z"
)


def is_component(value: str) -> bool:
    """Would :func:`check_component` accept ``value``? (One regex match, no exception.)"""
    return _VALID_COMPONENT.match(value) is not None


def check_artifact_name(name: str, *, allow_reserved: bool = False) -> str:
    """Return ``name`` if it is a valid artifact name, else raise InvalidNameError.

    Artifact names are relative POSIX paths. They are refused when they could escape a folder on
    export (``..``, a leading ``/``, a backslash), confuse Git (``.git``, control characters, empty
    components) or collide with gitstore's own files (the ``.gitstore/`` prefix is reserved).
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"artifact name must be a string, not {type(name).__name__}")
    if name == "":
        raise InvalidNameError("artifact name is empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidNameError(f"artifact name {name!r} is not valid UTF-8") from None
    if size > MAX_ARTIFACT_NAME_BYTES:
        raise InvalidNameError(
            f"artifact name {name[:40]!r}... is {size} bytes long "
            f"(at most {MAX_ARTIFACT_NAME_BYTES})"
        )
    if _CONTROL.search(name):
        raise InvalidNameError(f"artifact name {name!r} contains a control character")
    if "\\" in name:
        raise InvalidNameError(f"artifact name {name!r} contains a backslash")
    if name.startswith("/"):
        raise InvalidNameError(f"artifact name {name!r} is absolute (starts with '/')")
    parts = name.split("/")
    for part in parts:
        if part == "":
            raise InvalidNameError(f"artifact name {name!r} has an empty component")
        if part in (".", ".."):
            raise InvalidNameError(f"artifact name {name!r} has a {part!r} component")
        # git refuses .git in any letter case (and with trailing dots/spaces on some platforms).
        if part.rstrip(". ").casefold() == ".git":
            raise InvalidNameError(f"artifact name {name!r} has a '.git' component")
    if parts[0] == RESERVED_PREFIX and not allow_reserved:
        raise InvalidNameError(f"artifact name {name!r} is under the reserved prefix '.gitstore/'")
    return name


def check_alias(name: str) -> str:
    """Return ``name`` if it may name an alias (``best``, ``shipped``), else raise InvalidNameError.

    An alias is a spec/task-like component (it becomes the last component of its ref) that can
    never be read as another revision: not ``vN`` (any case), not only hex digits (a commit id
    prefix, whatever its length: ``cafe`` or ``abc`` could become one), not ``~...`` (the
    component rule already refuses it), and not a word git or gitstore reads as a revision
    (``HEAD``, ``latest``, ``FETCH_HEAD`` ... in any case).
    """
    check_component(name, "alias")
    if re.fullmatch(r"[vV][0-9]+", name):
        raise InvalidNameError(f"alias {name!r} reads as a version number; pick another name")
    if re.fullmatch(r"[0-9a-fA-F]+", name):
        raise InvalidNameError(
            f"alias {name!r} holds only hex digits and reads as a commit id; pick another name"
        )
    if name.casefold() in _REVISION_WORDS:
        raise InvalidNameError(f"alias {name!r} reads as a revision word; pick another name")
    return name


def alias_ref(spec: str, task: str, name: str) -> str:
    """The ref that holds alias ``name`` of ``spec/task``."""
    return f"{ALIASES_PREFIX}{spec}/{task}/{name}"


@dataclass(frozen=True, slots=True)
class Rev:
    """A revision of one task: the latest, ``vN``, ``~N`` (steps back), a commit prefix, or an
    alias (``best``)."""

    kind: str  # "latest" | "number" | "back" | "commit" | "alias"
    value: int | str | None = None

    def __str__(self) -> str:
        if self.kind == "latest":
            return ""
        if self.kind == "number":
            return f"v{self.value}"
        if self.kind == "back":
            return f"~{self.value}"
        return str(self.value)


LATEST = Rev("latest")


def parse_rev(text: str) -> Rev:
    """Parse the part after ``@``: ``vN``, ``~N``, a commit id prefix of 4 to 40 hex digits, or
    an alias name (:func:`check_alias`; the three others never pass it, so none is ambiguous)."""
    if re.fullmatch(r"v[0-9]+", text):
        n = int(text[1:])
        if n < 1:
            raise InvalidNameError(f"version {text!r}: versions start at v1")
        return Rev("number", n)
    if re.fullmatch(r"~[0-9]+", text):
        return Rev("back", int(text[1:]))
    if text == "~":
        return Rev("back", 1)
    lowered = text.lower()
    if _HEX.match(lowered):
        return Rev("commit", lowered)
    try:
        return Rev("alias", check_alias(text))
    except InvalidNameError:
        pass
    raise InvalidNameError(
        f"revision {text!r} is not vN, ~N, a commit id prefix (4 to 40 hex digits) or an alias"
    )


@dataclass(frozen=True, slots=True)
class Address:
    """``SPEC``, ``SPEC/TASK`` or ``SPEC/TASK@REV`` as given on a command line."""

    spec: str
    task: str | None = None
    rev: Rev = LATEST

    def __str__(self) -> str:
        text = self.spec if self.task is None else f"{self.spec}/{self.task}"
        return f"{text}@{self.rev}" if self.rev.kind != "latest" else text


def parse_address(text: str, *, need_task: bool = False, allow_rev: bool = True) -> Address:
    """Parse ``SPEC``, ``SPEC/TASK`` or ``SPEC/TASK@REV``, checking every part."""
    if not isinstance(text, str) or text == "":
        raise InvalidNameError("address is empty (expected SPEC/TASK)")
    body, at, rev_text = text.partition("@")
    rev = LATEST
    if at:
        if not allow_rev:
            raise InvalidNameError(f"address {text!r} may not carry a revision here")
        rev = parse_rev(rev_text)
    spec, slash, task = body.partition("/")
    if not slash:
        if need_task:
            raise InvalidNameError(f"address {text!r} names no task (expected SPEC/TASK)")
        if at:
            raise InvalidNameError(f"address {text!r}: a revision needs SPEC/TASK")
        return Address(check_component(spec, "spec"))
    if "/" in task:
        raise InvalidNameError(f"address {text!r} has more than SPEC/TASK before '@'")
    return Address(check_component(spec, "spec"), check_component(task, "task"), rev)


@dataclass(frozen=True, slots=True)
class ArtifactURI:
    """A parsed ``gitstore://SPEC/TASK[@REV]/NAME``: ``rev`` is the latest version when the URI
    names none (an unpinned URI, which follows the task's newest version)."""

    spec: str
    task: str
    rev: Rev
    name: str


def artifact_uri(spec: str, task: str, commit: str, name: str) -> str:
    """The URI that pins artifact ``name`` of the version ``commit`` of ``spec/task``."""
    # Most names need no quoting, and the check is a fifth of what quote() costs (a whole-store
    # log --jsonl makes a URI per artifact of every version).
    quoted = name if _URI_SAFE.match(name) else urllib.parse.quote(name, safe="/")
    return f"{URI_SCHEME}{spec}/{task}@{commit}/{quoted}"


# What urllib.parse.quote(name, safe="/") leaves as it is (its always-safe set, ASCII only).
_URI_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*\Z")


def parse_uri(text: str) -> ArtifactURI:
    """Parse ``gitstore://SPEC/TASK@REV/NAME`` (NAME percent-encoded as by :func:`artifact_uri`).

    Without ``@REV`` (``gitstore://SPEC/TASK/NAME``) the URI is unpinned: it names the artifact
    of the task's latest version, whichever that is when it is read.
    """
    if not isinstance(text, str) or not text.startswith(URI_SCHEME):
        raise InvalidNameError(f"URI {text!r} does not start with {URI_SCHEME!r}")
    rest = text[len(URI_SCHEME) :]
    spec, slash, rest = rest.partition("/")
    # The task (and its revision) end at the next "/": neither may hold one, while a name may
    # hold an "@" (artifact_uri escapes it, a hand-written unpinned URI may not).
    task_rev, slash2, quoted = rest.partition("/")
    task, at, rev_text = task_rev.partition("@")
    if not slash or not slash2 or not quoted or (at and not rev_text):
        raise InvalidNameError(f"URI {text!r} is not gitstore://SPEC/TASK[@COMMIT]/NAME")
    try:
        name = urllib.parse.unquote(quoted, errors="strict")
    except UnicodeDecodeError:
        raise InvalidNameError(f"URI {text!r}: the name's %-escapes are not UTF-8") from None
    return ArtifactURI(
        check_component(spec, "spec"),
        check_component(task, "task"),
        parse_rev(rev_text) if at else LATEST,
        check_artifact_name(name),
    )


def task_ref(spec: str, task: str) -> str:
    """The ref name that holds the latest version of ``spec/task``."""
    return f"{REFS_PREFIX}{spec}/{task}"


def check_layout(names: Iterable[str]) -> None:
    """Refuse a set where one name is both a file and a folder (``a`` and ``a/b``)."""
    files = set(names)
    for n in files:
        parts = n.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                raise InvalidNameError(
                    f"artifact {'/'.join(parts[:i])!r} is a file, so {n!r} cannot be under it"
                )
