"""A corpus of hostile stores, each built with stock git plumbing as an attacker would build one.

Every case is a bare repository whose ``refs/artifacts/s/t`` points at a commit that looks like a
gitstore version to a careless reader but breaks one rule (a name that escapes a folder, a tree that
does not match its manifest, a foreign commit in the history, a missing object ...). Each also
holds a good task ``a/ok``, so a route that lets the good task in while refusing the bad one shows
up as a ref that moved.

Objects are written with ``git hash-object -w [--literally]`` and ``git commit-tree`` (or as raw
commit text where git itself would refuse), never through gitstore, so the corpus does not share
gitstore's own idea of what a version is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MODE_FILE = b"100644"
MODE_EXEC = b"100755"
MODE_TREE = b"40000"
MODE_LINK = b"120000"
MODE_GITLINK = b"160000"
WHEN = "2026-11-30T10:00:00.000000Z"


class Repo:
    """A bare repository written with stock git plumbing only."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if create:
            subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)

    def _git(self, *args: str, data: bytes | None = None) -> str:
        done = subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            input=data,
            capture_output=True,
            check=True,
        )
        return done.stdout.decode().strip()

    def blob(self, data: bytes) -> str:
        return self._git("hash-object", "-w", "--stdin", data=data)

    def tree(self, entries: list[tuple[bytes, bytes, str]], *, sort: bool = True) -> str:
        """A tree of raw ``(mode, name, hex id)`` entries, written as given (``--literally``)."""
        if sort:
            # git's order: names compared as if folders ended with '/'.
            entries = sorted(entries, key=lambda e: e[1] + (b"/" if e[0] == MODE_TREE else b""))
        raw = b"".join(
            mode + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries
        )
        return self._git("hash-object", "-w", "--literally", "-t", "tree", "--stdin", data=raw)

    def raw_commit(self, tree: str, parents: list[str], message: str) -> str:
        """A commit object written as raw text: parents need not exist, git checks nothing."""
        lines = [f"tree {tree}"] + [f"parent {p}" for p in parents]
        lines += ["author x <x@x> 1790000000 +0000", "committer x <x@x> 1790000000 +0000", ""]
        raw = ("\n".join(lines) + "\n" + message).encode()
        return self._git("hash-object", "-w", "--literally", "-t", "commit", "--stdin", data=raw)

    def commit(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self._git(*args, "-m", message)

    def set_ref(self, name: str, oid: str) -> None:
        # Written as a file: update-ref refuses to point a ref at a missing object.
        ref = self.path / name
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(oid + "\n")


def entry(data: bytes, *, executable: bool = False, **over: Any) -> dict[str, Any]:
    """A manifest entry for ``data`` as gitstore writes one."""
    out = {
        "content_type": "text/plain",
        "created_at": WHEN,
        "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    if executable:
        out["executable"] = True
    out.update(over)
    return out


def manifest(
    artifacts: Mapping[str, dict[str, Any]],
    *,
    spec: str = "s",
    task: str = "t",
    version: int = 1,
    **over: Any,
) -> bytes:
    body = {
        "format": 1,
        "spec": spec,
        "task": task,
        "version": version,
        "created_at": WHEN,
        "run_id": None,
        "message": None,
        "metadata": {},
        "artifacts": dict(artifacts),
        "conflicts": [],
    }
    body.update(over)
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def message(spec: str = "s", task: str = "t", version: int = 1) -> str:
    return (
        f"put\n\nGitstore-Spec: {spec}\nGitstore-Task: {task}\nGitstore-Version: {version}\n"
        f"Gitstore-Created: {WHEN}\n"
    )


def meta_tree(repo: Repo, manifest_bytes: bytes) -> str:
    return repo.tree([(MODE_FILE, b"manifest.json", repo.blob(manifest_bytes))])


def nest(repo: Repo, files: Mapping[str, tuple[bytes, str]]) -> list[tuple[bytes, bytes, str]]:
    """Root entries for ``{path: (mode, blob id)}``, building the folders below with git."""
    top: dict[bytes, Any] = {}
    for path, (mode, oid) in files.items():
        node = top
        parts = path.encode().split(b"/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (mode, oid)

    def build(node: dict[bytes, Any]) -> list[tuple[bytes, bytes, str]]:
        out = []
        for name, value in node.items():
            if isinstance(value, dict):
                out.append((MODE_TREE, name, repo.tree(build(value))))
            else:
                out.append((value[0], name, value[1]))
        return out

    return build(top)


def version(
    repo: Repo,
    files: Mapping[str, bytes],
    *,
    parents: tuple[str, ...] = (),
    number: int = 1,
    spec: str = "s",
    task: str = "t",
    **manifest_over: Any,
) -> str:
    """A well-formed version commit, exactly as gitstore would write it, made with git."""
    blobs = {name: (MODE_FILE, repo.blob(data)) for name, data in files.items()}
    arts = {name: entry(data) for name, data in files.items()}
    m = manifest(arts, spec=spec, task=task, version=number, **manifest_over)
    root = [*nest(repo, blobs), (MODE_TREE, b".gitstore", meta_tree(repo, m))]
    return repo.commit(repo.tree(root), list(parents), message(spec, task, number))


def hostile_version(
    repo: Repo,
    names: Mapping[str, bytes],
    tree_entries: list[tuple[bytes, bytes, str]],
    *,
    parents: tuple[str, ...] = (),
    number: int = 1,
    artifacts: Mapping[str, dict[str, Any]] | None = None,
    manifest_bytes: bytes | None = None,
    sort: bool = True,
) -> str:
    """A commit whose manifest lists ``names`` and whose tree is ``tree_entries`` (+ manifest)."""
    arts = artifacts if artifacts is not None else {n: entry(d) for n, d in names.items()}
    m = manifest_bytes if manifest_bytes is not None else manifest(arts, version=number)
    root = [*tree_entries, (MODE_TREE, b".gitstore", meta_tree(repo, m))]
    return repo.raw_commit(repo.tree(root, sort=sort), list(parents), message(version=number))


B = b"payload\n"


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile store: what to build, and the exit code every way in must give."""

    id: str
    build: Callable[[Repo], str]  # returns the commit refs/artifacts/s/t points at
    code: int  # 15: a version refused; 13: not a store at all; 14: objects missing
    bundle: bool = True  # False where stock git cannot even bundle it (missing objects)
    # The code when the objects are already in the store (no transfer in between), if different.
    direct: int | None = None

    @property
    def direct_code(self) -> int:
        return self.code if self.direct is None else self.direct


def _dir_entry(repo: Repo, name: bytes, inner: list[tuple[bytes, bytes, str]]) -> tuple:
    return (MODE_TREE, name, repo.tree(inner))


def _name_case(name: str) -> Callable[[Repo], str]:
    """Manifest and tree agree on ``name``: only the name rule can refuse it."""

    def build(repo: Repo) -> str:
        b = repo.blob(B)
        parts = name.encode().split(b"/")
        node: list[tuple[bytes, bytes, str]] = [(MODE_FILE, parts[-1], b)]
        for part in reversed(parts[:-1]):
            node = [(MODE_TREE, part, repo.tree(node, sort=False))]
        return hostile_version(repo, {name: B, "ok.txt": B}, [*node, (MODE_FILE, b"ok.txt", b)])

    return build


def _mode_case(mode: bytes, data: bytes = B) -> Callable[[Repo], str]:
    def build(repo: Repo) -> str:
        oid = repo.blob(data)
        arts = {"x": entry(data)}
        return hostile_version(repo, {}, [(mode, b"x", oid)], artifacts=arts)

    return build


def _gitlink(repo: Repo) -> str:
    inner = version(repo, {"a": B}, spec="z", task="z")
    arts = {"sub": entry(B, oid=inner)}
    return hostile_version(repo, {}, [(MODE_GITLINK, b"sub", inner)], artifacts=arts)


def _exec_mismatch(repo: Repo) -> str:
    return hostile_version(repo, {"run.sh": B}, [(MODE_EXEC, b"run.sh", repo.blob(B))])


def _listed_not_in_tree(repo: Repo) -> str:
    b = repo.blob(B)
    return hostile_version(repo, {"ok.txt": B, "ghost.txt": B}, [(MODE_FILE, b"ok.txt", b)])


def _tree_only_blob(repo: Repo) -> str:
    b, hidden = repo.blob(B), repo.blob(b"not in the manifest\n")
    return hostile_version(
        repo, {"ok.txt": B}, [(MODE_FILE, b"ok.txt", b), (MODE_FILE, b"hidden.txt", hidden)]
    )


def _tree_only_folder(repo: Repo) -> str:
    b = repo.blob(B)
    return hostile_version(
        repo,
        {"ok.txt": B},
        [(MODE_FILE, b"ok.txt", b), _dir_entry(repo, b"extra", [(MODE_FILE, b"f", b)])],
    )


def _wrong_blob(repo: Repo) -> str:
    other = repo.blob(b"other bytes\n")
    return hostile_version(repo, {"ok.txt": B}, [(MODE_FILE, b"ok.txt", other)])


def _duplicate_entry(repo: Repo) -> str:
    b, other = repo.blob(B), repo.blob(b"second\n")
    return hostile_version(
        repo,
        {"ok.txt": B},
        [(MODE_FILE, b"ok.txt", b), (MODE_FILE, b"ok.txt", other)],
        sort=False,
    )


def _slash_in_entry(repo: Repo) -> str:
    b = repo.blob(B)
    return hostile_version(repo, {"a/b": B}, [(MODE_FILE, b"a/b", b)])


def _non_utf8_entry(repo: Repo) -> str:
    b = repo.blob(B)
    return hostile_version(
        repo, {"ok.txt": B}, [(MODE_FILE, b"ok.txt", b), (MODE_FILE, b"\xff", b)]
    )


def _gitstore_is_blob(repo: Repo) -> str:
    b = repo.blob(B)
    m = repo.blob(manifest({"ok.txt": entry(B)}))
    root = repo.tree([(MODE_FILE, b"ok.txt", b), (MODE_FILE, b".gitstore", m)])
    return repo.raw_commit(root, [], message())


def _gitstore_extra_file(repo: Repo) -> str:
    b = repo.blob(B)
    m = repo.blob(manifest({"ok.txt": entry(B)}))
    meta = repo.tree([(MODE_FILE, b"manifest.json", m), (MODE_FILE, b"hooks.sh", b)])
    root = repo.tree([(MODE_FILE, b"ok.txt", b), (MODE_TREE, b".gitstore", meta)])
    return repo.raw_commit(root, [], message())


def _manifest_is_symlink(repo: Repo) -> str:
    b = repo.blob(B)
    m = repo.blob(manifest({"ok.txt": entry(B)}))
    meta = repo.tree([(MODE_LINK, b"manifest.json", m)])
    root = repo.tree([(MODE_FILE, b"ok.txt", b), (MODE_TREE, b".gitstore", meta)])
    return repo.raw_commit(root, [], message())


def _manifest_bytes(data: bytes) -> Callable[[Repo], str]:
    def build(repo: Repo) -> str:
        b = repo.blob(B)
        return hostile_version(repo, {}, [(MODE_FILE, b"ok.txt", b)], manifest_bytes=data)

    return build


def _deep_metadata(repo: Repo) -> str:
    deep = b"[" * 50_000 + b"]" * 50_000
    data = manifest({"ok.txt": entry(B)}).replace(
        b'"metadata": {}', b'"metadata": {"k": ' + deep + b"}"
    )
    return _manifest_bytes(data)(repo)


def _bad_entry(**over: Any) -> Callable[[Repo], str]:
    def build(repo: Repo) -> str:
        b = repo.blob(B)
        arts = {"ok.txt": entry(B, **over)}
        return hostile_version(repo, {}, [(MODE_FILE, b"ok.txt", b)], artifacts=arts)

    return build


def _other_task_head(repo: Repo) -> str:
    return version(repo, {"ok.txt": B}, spec="s", task="other")


def _plain_commit_head(repo: Repo) -> str:
    return repo.commit(repo.tree([(MODE_FILE, b"README", repo.blob(B))]), [], "plain commit")


def _hostile_ancestor(repo: Repo) -> str:
    bad = _name_case("../x")(repo)
    return version(repo, {"ok.txt": B}, parents=(bad,), number=2)


def _plain_ancestor(repo: Repo) -> str:
    plain = _plain_commit_head(repo)
    return version(repo, {"ok.txt": B}, parents=(plain,), number=2)


def _foreign_ancestor(repo: Repo) -> str:
    other = version(repo, {"ok.txt": B}, spec="s", task="other")
    return version(repo, {"ok.txt": B}, parents=(other,), number=2)


def _wrong_number(repo: Repo) -> str:
    # Numbers may skip (retention drops versions and keeps the others' numbers), never go back.
    first = version(repo, {"ok.txt": B}, number=3)
    return version(repo, {"ok.txt": b"v2\n"}, parents=(first,), number=2)


def _trailer_disagrees(repo: Repo) -> str:
    b = repo.blob(B)
    m = manifest({"ok.txt": entry(B)}, version=1)
    root = repo.tree([(MODE_FILE, b"ok.txt", b), (MODE_TREE, b".gitstore", meta_tree(repo, m))])
    return repo.raw_commit(root, [], message(version=7))


def _octopus(repo: Repo) -> str:
    ps = tuple(version(repo, {"ok.txt": str(i).encode()}) for i in range(3))
    return version(repo, {"ok.txt": B}, parents=ps, number=2)


def _deep_tree(repo: Repo) -> str:
    """A tree 10,000 folders deep under a version that lists only ``ok.txt``."""
    b = repo.blob(B)
    with tempfile.TemporaryDirectory() as tmp:
        raw_paths = []
        oid = b
        mode = MODE_FILE
        for i in range(10_000):
            raw = mode + b" d\0" + bytes.fromhex(oid)
            oid = hashlib.sha1(b"tree %d\0" % len(raw) + raw).hexdigest()
            mode = MODE_TREE
            path = os.path.join(tmp, str(i))
            with open(path, "wb") as f:
                f.write(raw)
            raw_paths.append(path)
        # One git call writes all 10,000 trees (each holds the id of the one before).
        repo._git(
            "hash-object",
            "-w",
            "-t",
            "tree",
            "--literally",
            "--stdin-paths",
            data="\n".join(raw_paths).encode(),
        )
    return hostile_version(repo, {"ok.txt": B}, [(MODE_FILE, b"ok.txt", b), (MODE_TREE, b"d", oid)])


_MISSING = "1234567890abcdef1234567890abcdef12345678"


def _ref_to_missing(repo: Repo) -> str:
    return _MISSING


def _missing_parent(repo: Repo) -> str:
    b = repo.blob(B)
    return hostile_version(
        repo, {"ok.txt": B}, [(MODE_FILE, b"ok.txt", b)], parents=(_MISSING,), number=2
    )


def _missing_blob(repo: Repo) -> str:
    arts = {"ok.txt": entry(B, oid=_MISSING)}
    return hostile_version(repo, {}, [(MODE_FILE, b"ok.txt", _MISSING)], artifacts=arts)


CASES: list[Case] = [
    # Names that manifest and tree agree on: only the put rules refuse them.
    Case("dotdot-folder", _name_case("../x"), 15),
    Case("dotdot-inside", _name_case("a/../../b"), 15),
    Case("dotdot-deep", _name_case("../../../esc"), 15),
    Case("dot-component", _name_case("./x"), 15),
    Case("dot-git-config", _name_case(".git/config"), 15),
    Case("dot-git-any-case", _name_case("sub/.GIT/hooks/post-checkout"), 15),
    Case("newline-in-name", _name_case("forged\nrow"), 15),
    Case("escape-in-name", _name_case("\x1b[31mred"), 15),
    Case("backslash-in-name", _name_case("a\\b"), 15),
    Case("name-3000-bytes", _name_case("n" * 3000), 15),
    Case("reserved-prefix", _name_case(".gitstore/extra"), 15),
    # Stock git will not even pack an empty entry name: the remote's own upload-pack refuses.
    Case("empty-component", _name_case("a//b"), 14, bundle=False, direct=15),
    Case(
        "file-and-folder",
        lambda r: hostile_version(r, {"a": B, "a/b": B}, [(MODE_FILE, b"a", r.blob(B))]),
        15,
    ),
    # Modes: only plain files.
    Case("symlink", _mode_case(MODE_LINK, b"/etc/passwd"), 15),
    Case("gitlink", _gitlink, 15),
    Case("group-writable-mode", _mode_case(b"100664"), 15),
    Case("exec-bit-disagrees", _exec_mismatch, 15),
    # Tree and manifest disagree.
    Case("listed-not-in-tree", _listed_not_in_tree, 15),
    Case("tree-only-blob", _tree_only_blob, 15),
    Case("tree-only-folder", _tree_only_folder, 15),
    Case("tree-blob-differs", _wrong_blob, 15),
    Case("duplicate-tree-entry", _duplicate_entry, 15),
    Case("slash-in-tree-entry", _slash_in_entry, 15),
    Case("non-utf8-tree-entry", _non_utf8_entry, 15),
    Case("deep-tree-10000", _deep_tree, 15),
    # The manifest itself.
    Case("gitstore-is-a-file", _gitstore_is_blob, 13),
    Case("gitstore-extra-file", _gitstore_extra_file, 15),
    Case("manifest-is-symlink", _manifest_is_symlink, 15),
    Case("manifest-not-json", _manifest_bytes(b"{not json"), 15),
    Case("manifest-deep-metadata", _deep_metadata, 15),
    Case("manifest-bad-oid", _bad_entry(oid="../../etc"), 15),
    Case("manifest-bad-sha256", _bad_entry(sha256="zz"), 15),
    Case("manifest-negative-size", _bad_entry(size=-1), 15),
    Case("manifest-bad-time", _bad_entry(created_at="yesterday"), 15),
    # The history.
    Case("head-of-another-task", _other_task_head, 15),
    Case("head-plain-commit", _plain_commit_head, 13),
    Case("ancestor-hostile-name", _hostile_ancestor, 15),
    Case("ancestor-plain-commit", _plain_ancestor, 15),
    Case("ancestor-of-another-task", _foreign_ancestor, 15),
    Case("version-number-goes-back", _wrong_number, 15),
    Case("trailer-disagrees", _trailer_disagrees, 15),
    Case("three-parents", _octopus, 15),
    # Objects the transfer cannot deliver.
    Case("ref-to-missing-object", _ref_to_missing, 14, bundle=False),
    Case("missing-parent", _missing_parent, 14, bundle=False),
    Case("missing-blob", _missing_blob, 14, bundle=False),
]


def build_case(case: Case, path: Path) -> tuple[Path, str]:
    """The hostile store of ``case`` at ``path``; returns it and the bad head's commit."""
    repo = Repo(path)
    repo.set_ref("refs/artifacts/a/ok", version(repo, {"fine.txt": b"fine\n"}, spec="a", task="ok"))
    head = case.build(repo)
    repo.set_ref("refs/artifacts/s/t", head)
    return path, head
