"""Finding secrets in what is stored and in what leaves: :func:`scan_version` reads a version whole.

A version is more than its artifacts' bytes. :func:`scan_version` reads, with one
:class:`~gitstore.secrets.Masker` and its one binary rule (:func:`~gitstore.secrets.is_binary`):

* every blob its tree holds, whatever the manifest says (a blob the manifest does not list is
  named by its path in the tree), and every blob the manifest lists; text is read in pieces that
  never split a secret, binary content is skipped (token shapes in an image are noise);
* every field of its manifest, known or not: the message, run id, metadata (each leaf read as
  ``KEY=VALUE``, see :func:`~gitstore.secrets.field_texts`), each artifact's name, tags and
  content type;
* the raw bytes of its commit (headers, message, trailers) and of its manifest: a secret found
  there more often than in the fields they carry (in a commit header, behind a duplicate JSON
  key) is reported too, so no byte goes unread.

A finding (:class:`SecretFinding`) names where the secret is and its kind, never the secret.
:func:`scan` runs :func:`scan_version` over every version of a scope (``gitstore scan``,
``Store.scan``); push runs it over the versions a remote lacks. A :class:`Scanner` reads each blob
once however many versions and tasks hold it, and a ``seen`` set makes each thing be reported
once, at the first (newest) version read that holds it.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import stat
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from gitstore.backend.trees import MODE_GITLINK, KindError, read_blob, read_tree
from gitstore.errors import IntegrityError
from gitstore.meta import decode_manifest
from gitstore.model import MANIFEST_PATH, SecretFinding
from gitstore.secrets import FieldPath as _Path
from gitstore.secrets import Finding, Masker, field_texts
from gitstore.versions import Versions

__all__ = ["Scanner", "SecretFinding", "scan", "scan_version"]

# The manifest fields a version's commit message repeats (summary and body, trailers).
_IN_COMMIT = {("message",), ("run_id",), ("spec",), ("task",)}
# Findings in fields come first, in this order (then artifacts' fields, then the rest).
_RANK = {"message": 0, "run_id": 1, "metadata": 2, "artifacts": 3}


def scan(
    versions: Versions, heads: Mapping[str, str], *, masker: Masker | None = None
) -> Iterator[SecretFinding]:
    """Secret-shaped strings in every version of the tasks in ``heads`` (``SPEC/TASK -> head``;
    :meth:`gitstore.Store.heads_in` gives them for a scope).

    Each task's versions are read newest first, and each thing (a blob, a field's text) is
    reported once per task, at the newest version holding it.

    Args:
      versions: the store's versions.
      heads: the tasks to read, with their heads.
      masker: what counts as a secret (default: the well-known token shapes only; environment
        values of the scanning process are not secrets of the stored runs).
    """
    scanner = Scanner(versions, masker)
    for head in heads.values():
        seen: set[str] = set()
        for version in versions.history(head):
            yield from scanner.version(version.commit, seen)


def scan_version(
    versions: Versions,
    commit: str,
    *,
    masker: Masker | None = None,
    seen: set[str] | None = None,
    scanner: Scanner | None = None,
) -> list[SecretFinding]:
    """Secret-shaped strings anywhere in version ``commit``: the one scanner of gitstore.

    Reads the version's tree (every blob), manifest (every field) and commit, as the module
    docstring says. ``seen`` holds what was reported already (blob ids, field texts): those are
    skipped, and what this version reports is added. ``scanner`` (reused across calls) reads each
    blob only once; without one, a new one with ``masker`` (default: token shapes only) is used.

    Raises:
      IntegrityError: the version or an object its tree names is missing or damaged.
    """
    return (scanner or Scanner(versions, masker)).version(commit, seen)


@dataclasses.dataclass
class _Read:
    """A version's parts, as read from its objects."""

    spec: str
    task: str
    commit_raw: bytes
    manifest_raw: bytes
    doc: dict[str, Any]
    blobs: list[tuple[str, str, str]]  # (path, blob id, field: "" or "tree")


class Scanner:
    """Reads versions for :func:`scan_version`, each blob only once (its findings are kept).

    Args:
      versions: the versions of the store to read.
      masker: what counts as a secret (default: the well-known token shapes only).
    """

    def __init__(self, versions: Versions, masker: Masker | None = None) -> None:
        self.versions = versions
        self.masker = masker or Masker(env={})
        self._blobs: dict[str, list[Finding]] = {}

    def version(self, commit: str, seen: set[str] | None = None) -> list[SecretFinding]:
        """:func:`scan_version` of ``commit``."""
        return self._version(commit, set() if seen is None else seen, read_blobs=True)

    def held(self, commit: str) -> set[str]:
        """What version ``commit`` holds, as ``seen`` keys: a ``seen`` to start from when
        whoever receives the versions already has this one (push: the remote's head)."""
        seen: set[str] = set()
        self._version(commit, seen, read_blobs=False)
        return seen

    def _version(self, commit: str, seen: set[str], *, read_blobs: bool) -> list[SecretFinding]:
        v = self._read(commit)
        out: list[SecretFinding] = []

        def finding(name: str, f: Finding, field: str) -> SecretFinding:
            return SecretFinding(
                v.spec, v.task, commit, self._show(name), f.line, f.kind, self._show(field)
            )

        pairs = list(field_texts(v.doc))
        pairs.sort(key=lambda p: _RANK.get(str(p[0][0]), len(_RANK)))
        # The raw manifest and commit go in the same batch: a clean version is one pass.
        texts = [_encode(text) for _, text in pairs]
        *found, in_manifest_raw, in_commit_raw = self._scan_texts(
            [*texts, v.manifest_raw, v.commit_raw]
        )
        in_fields: collections.Counter[str] = collections.Counter()
        in_commit: collections.Counter[str] = collections.Counter()
        for (path, text), fs in zip(pairs, found, strict=True):
            if not fs:
                continue
            in_fields.update(f.kind for f in fs)
            if path in _IN_COMMIT:
                in_commit.update(f.kind for f in fs)
            field, name = _label(path)
            key = f"{field}\0{name}\0{text}"
            if key not in seen:
                seen.add(key)
                out += [finding(name, f, field) for f in fs]
        for where, oid, field in v.blobs:
            if oid in seen:
                continue
            seen.add(oid)
            if read_blobs:
                out += [finding(where, f, field) for f in self._blob(oid)]
        # The raw texts that carry the fields: what they hold beyond the fields is reported too.
        out += self._excess(v, commit, in_manifest_raw, in_fields, "manifest", 0, seen)
        header = v.commit_raw.split(b"\n\n", 1)[0].count(b"\n") + 1
        out += self._excess(v, commit, in_commit_raw, in_commit, "commit", header, seen)
        return out

    def _excess(
        self,
        v: _Read,
        commit: str,
        raw: list[Finding],
        explained: collections.Counter[str],
        field: str,
        header: int,
        seen: set[str],
    ) -> list[SecretFinding]:
        """Findings in a raw text beyond those its fields explain (lines up to ``header`` carry
        no field)."""
        left = collections.Counter(explained)
        out = []
        for f in raw:
            if f.line > header and left[f.kind] > 0:
                left[f.kind] -= 1
                continue
            key = f"{field}\0\0{f.kind}\0{f.line}"
            if key not in seen:
                seen.add(key)
                out.append(SecretFinding(v.spec, v.task, commit, "", f.line, f.kind, field))
        return out

    def _scan_texts(self, texts: list[bytes]) -> list[list[Finding]]:
        """:meth:`Masker.scan` of each text, reading a clean batch in one pass.

        Joined by newlines, texts hold every match each holds alone (a newline stops every shape
        where the end of a text does, and no literal or finder crosses one), and maybe more
        across a join; so a batch whose join is clean is clean, and only a batch with a finding
        is split in halves and read again.
        """
        out: list[list[Finding]] = [[] for _ in texts]

        def visit(lo: int, hi: int) -> None:
            if hi - lo == 1:
                out[lo] = self.masker.scan(texts[lo])
            elif self.masker.scan(b"\n".join(texts[lo:hi])):
                mid = (lo + hi) // 2
                visit(lo, mid)
                visit(mid, hi)

        if texts:
            visit(0, len(texts))
        return out

    def _blob(self, oid: str) -> list[Finding]:
        found = self._blobs.get(oid)
        if found is None:
            raw = self.versions.objects.open_blob(oid)
            with io.BufferedReader(raw, 1 << 16) as f:  # full-size reads: fewer pieces to join
                found = list(self.masker.scan_content(f))
            self._blobs[oid] = found
        return found

    def _show(self, text: str) -> str:
        """``text`` (a name, a key) fit to print: masked if it holds a secret itself."""
        if not text:
            return text
        masked, n = self.masker.mask(_encode(text))
        return masked.decode("utf-8", "replace") if n else text

    def _read(self, commit: str) -> _Read:
        versions = self.versions
        c = versions.commit(commit)
        tree: list[tuple[str, str]] = []
        self._walk(c.tree, "", tree)
        manifest_oid = next((oid for path, oid in tree if path == MANIFEST_PATH), None)
        try:
            manifest_raw = read_blob(versions.objects, manifest_oid) if manifest_oid else None
        except KindError:
            manifest_raw = None
        if manifest_raw is None:
            raise IntegrityError(f"commit {commit} is not a gitstore version (no manifest)")
        # Decoded here rather than by Versions.manifest, which would read the same objects again.
        manifest = versions.cached(commit)
        if manifest is None:
            try:
                manifest = decode_manifest(manifest_raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise IntegrityError(f"version {commit}: damaged manifest ({e})") from None
            versions.remember(commit, manifest)
        # Every key, known or not, as it stands in the JSON (the typed manifest drops unknown ones).
        doc: dict[str, Any] = msgspec.json.decode(manifest_raw)
        listed: dict[str, str] = {}
        for name, entry in doc.get("artifacts", {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("oid"), str):
                listed[name] = entry["oid"]
        blobs = [
            (path, oid, "" if listed.get(path) == oid else "tree")
            for path, oid in tree
            if path != MANIFEST_PATH
        ]
        in_tree = set(tree)
        # A blob the manifest lists but the tree does not hold there is what get would read.
        blobs += [
            (name, oid, "")
            for name, oid in sorted(listed.items())
            if (name, oid) not in in_tree and versions.has(oid)
        ]
        return _Read(manifest.spec, manifest.task, c.raw, manifest_raw, doc, blobs)

    def _walk(self, tree_id: str, prefix: str, out: list[tuple[str, str]]) -> None:
        # A stack, not recursion: a tree crafted thousands of folders deep is read, not a crash.
        todo = [(tree_id, prefix)]
        while todo:
            oid, at = todo.pop()
            for item in read_tree(self.versions.objects, oid):
                path = at + item.name.decode("utf-8", "surrogateescape")
                if stat.S_ISDIR(item.mode):
                    todo.append((item.oid, path + "/"))
                elif item.mode != MODE_GITLINK:  # a submodule's commit is not in this store
                    out.append((path, item.oid))


def _label(path: _Path) -> tuple[str, str]:
    """(field, artifact name) of a manifest path, as :class:`SecretFinding` names them."""
    head = str(path[0])
    if len(path) == 1 and head in ("message", "run_id", "spec", "task"):
        return head, ""
    if head == "metadata" and len(path) > 1:
        return "metadata" + _dotted(path[1:]), ""
    if head == "artifacts" and len(path) > 1:
        name, rest = str(path[1]), path[2:]
        if not rest:
            return "name", name
        if rest[0] == "tags" and len(rest) == 2:
            return f"tag {rest[1]}", name
        if rest == ("content_type",):
            return "content type", name
        return _dotted(rest)[1:], name
    return "manifest" + _dotted(path), ""


def _dotted(path: _Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
