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
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec

from gitstore import secrets as _secrets_module
from gitstore._fs import atomic_write
from gitstore.backend.bulk import BLOB, COMMIT, PackMap
from gitstore.backend.objects import ObjectBackend
from gitstore.backend.trees import MODE_GITLINK, KindError, read_blob, read_commit, read_tree
from gitstore.errors import GitstoreError, IntegrityError
from gitstore.meta import decode_manifest
from gitstore.model import MANIFEST_PATH, SecretFinding
from gitstore.secrets import BINARY_WINDOW, MAX_CARRY, Finding, Masker, field_texts, is_binary
from gitstore.secrets import FieldPath as _Path
from gitstore.versions import Versions

__all__ = ["Scanner", "SecretFinding", "Verdicts", "scan", "scan_version"]

# The manifest fields a version's commit message repeats (summary and body, trailers).
_IN_COMMIT = {("message",), ("run_id",), ("spec",), ("task",)}
# Texts scanned in one pass by Scanner.clean (a clean batch is read once).
_BATCH = 4 << 20
# What a clean verdict was made with: this module and the secret rules (shapes, binary rule,
# field texts). Any change to either makes earlier verdicts unknown, so everything is scanned.
_RULES = (__file__, _secrets_module.__file__)
# Verdict files merged into one once there are more than this many.
_VERDICT_FILES = 16
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
    partial: bool = False  # a blob the manifest lists outside the tree is absent


class Scanner:
    """Reads versions for :func:`scan_version`, each blob only once (its findings are kept).

    Args:
      versions: the versions of the store to read.
      masker: what counts as a secret (default: the well-known token shapes only).
      objects: where to read objects from (default: ``versions.objects``; a push reads from
        its :class:`~gitstore.backend.bulk.PackMap`).
      verdicts: clean verdicts recorded earlier, consulted and added to by :meth:`clean`
        (only with the default masker: a verdict holds for the rules it was made with).
    """

    def __init__(
        self,
        versions: Versions,
        masker: Masker | None = None,
        *,
        objects: ObjectBackend | None = None,
        verdicts: Verdicts | None = None,
    ) -> None:
        self.versions = versions
        self.objects = objects if objects is not None else versions.objects
        self.verdicts = verdicts if masker is None else None
        self.masker = masker or Masker(env={})
        self._blobs: dict[str, list[Finding]] = {}

    def clean(self, commits: Iterable[str]) -> set[str]:
        """The versions among ``commits`` proven to hold nothing secret-shaped.

        What :meth:`version` would read (every blob of the tree, every field of the manifest,
        the raw manifest and commit) is read here too, but scanned in large batches: texts
        joined by newlines hold every match each holds alone (see :meth:`_scan_texts`), so a
        clean batch proves each of its texts clean, and only a batch with a finding is split.
        Versions not returned (a finding, or something that cannot be read) need
        :meth:`version`, which says where. With :attr:`verdicts`, a version or blob found
        clean before is not read again, and what is found clean now is recorded.
        """
        known = self.verdicts.load() if self.verdicts is not None else set()
        units: list[bytes] = []  # texts to scan: each version's fields, then blobs
        owner: list[list[str]] = []  # which versions each text belongs to
        out: set[str] = set()
        blob_at: dict[str, int] = {}
        clean_blobs: list[str] = []
        for commit in set(commits):
            if bytes.fromhex(commit) in known:
                out.add(commit)
                continue
            try:
                parts = self._parts(commit)
            except (GitstoreError, ValueError):
                continue  # damaged or no version: the full scan says what is wrong
            if parts is None:
                continue  # a listed blob is absent: its verdict may change when it arrives
            commit_raw, manifest_raw, doc, blob_ids = parts
            texts = _encode("\n".join(_leaf_texts(doc)))  # encoding is per character: join first
            units.append(b"\n".join([texts, manifest_raw, commit_raw]))
            owner.append([commit])
            out.add(commit)
            for oid in blob_ids:
                at = blob_at.get(oid)
                if at is not None:
                    if at >= 0:
                        owner[at].append(commit)
                    elif at == -2:
                        out.discard(commit)  # a blob found dirty or unreadable
                    continue
                if bytes.fromhex(oid) in known:
                    blob_at[oid] = -1
                    continue
                readable, text = self._clean_candidate(oid)
                if not readable:
                    blob_at[oid] = -2
                    out.discard(commit)
                elif text is None:  # binary, or big and read whole by the stream scanner
                    blob_at[oid] = -1
                    clean_blobs.append(oid)
                else:
                    blob_at[oid] = len(units)
                    units.append(text)
                    owner.append([commit])
        dirty = self._dirty(units)
        for i in dirty:
            out.difference_update(owner[i])
        # A blob shared with a dirty version is still clean itself: only its own text counts.
        clean_blobs += [oid for oid, at in blob_at.items() if at >= 0 and at not in dirty]
        if self.verdicts is not None:
            self.verdicts.record([*out, *clean_blobs], known)
        return out

    def _parts(self, commit: str) -> tuple[bytes, bytes, Any, list[str]] | None:
        """What :meth:`clean` reads of a version: its raw commit and manifest, the manifest as
        JSON, the blobs it holds; None when a blob the manifest lists outside the tree is
        absent. Read straight from a pack map's entries when there is one."""
        packs = self.objects if isinstance(self.objects, PackMap) else None
        if packs is None:
            v = self._read(commit)
            return (
                None
                if v.partial
                else (v.commit_raw, v.manifest_raw, v.doc, [b[1] for b in v.blobs])
            )
        kind, commit_raw = packs.read(commit)
        if kind != COMMIT or not commit_raw.startswith(b"tree "):
            raise IntegrityError(f"object {commit} is no version")
        tree: list[tuple[str, str]] = []
        todo = [(commit_raw[5:45].decode(), "")]
        while todo:
            oid, at = todo.pop()
            for name, mode, item in packs.tree_items(oid):
                path = at + name.decode("utf-8", "surrogateescape")
                if stat.S_ISDIR(mode):
                    todo.append((item, path + "/"))
                elif mode != MODE_GITLINK:
                    tree.append((path, item))
        manifest_oid = next((oid for path, oid in tree if path == MANIFEST_PATH), None)
        if manifest_oid is None:
            raise IntegrityError(f"commit {commit} is not a gitstore version (no manifest)")
        kind, manifest_raw = packs.read(manifest_oid)
        if kind != BLOB:
            raise IntegrityError(f"commit {commit} is not a gitstore version (no manifest)")
        try:
            doc: Any = msgspec.json.decode(manifest_raw)
        except msgspec.DecodeError:
            raise IntegrityError(f"version {commit}: damaged manifest") from None
        blobs = [oid for path, oid in tree if path != MANIFEST_PATH]
        listed = doc.get("artifacts", {}) if isinstance(doc, dict) else {}
        in_tree = set(tree)
        for name, entry in listed.items() if isinstance(listed, dict) else ():
            listed_oid = entry.get("oid") if isinstance(entry, dict) else None
            if isinstance(listed_oid, str) and (name, listed_oid) not in in_tree:
                if not packs.has(listed_oid):
                    return None
                blobs.append(listed_oid)
        return commit_raw, manifest_raw, doc, blobs

    def _clean_candidate(self, oid: str) -> tuple[bool, bytes | None]:
        """(False, None) for blob ``oid`` holding a finding or unreadable; (True, None) for one
        clean without batching (binary, or big and scanned here as a stream); (True, text) for
        one to batch."""
        try:
            if isinstance(self.objects, PackMap):
                small = self.objects.read_small(oid, MAX_CARRY)
                if small is not None:
                    kind, data = small
                    if kind != BLOB:
                        return False, None
                    return True, (None if is_binary(data[:BINARY_WINDOW]) else data)
            with self.objects.open_blob(oid) as raw:
                if raw.size >= MAX_CARRY:
                    return not self._blob(oid), None
                data = raw.readall()
        except GitstoreError:
            return False, None
        return True, (None if is_binary(data[:BINARY_WINDOW]) else data)

    def _dirty(self, texts: list[bytes]) -> set[int]:
        """Indexes of the texts holding a finding (clean batches are read once)."""
        dirty: set[int] = set()

        def visit(lo: int, hi: int) -> None:
            if hi - lo == 1:
                if self.masker.scan(texts[lo]):
                    dirty.add(lo)
            elif self.masker.scan(b"\n".join(texts[lo:hi])):
                mid = (lo + hi) // 2
                visit(lo, mid)
                visit(mid, hi)

        # Batches of a few MiB: one pass each when clean, a short bisection when not.
        lo = size = 0
        for i, text in enumerate(texts):
            size += len(text) + 1
            if size >= _BATCH or i == len(texts) - 1:
                visit(lo, i + 1)
                lo, size = i + 1, 0
        return dirty

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
            raw = self.objects.open_blob(oid)
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
        c = read_commit(self.objects, commit)
        tree: list[tuple[str, str]] = []
        self._walk(c.tree, "", tree)
        manifest_oid = next((oid for path, oid in tree if path == MANIFEST_PATH), None)
        try:
            manifest_raw = read_blob(self.objects, manifest_oid) if manifest_oid else None
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
        elsewhere = [(n, oid) for n, oid in sorted(listed.items()) if (n, oid) not in in_tree]
        present = [(n, oid) for n, oid in elsewhere if self.objects.has(oid)]
        blobs += [(name, oid, "") for name, oid in present]
        partial = len(present) < len(elsewhere)
        return _Read(manifest.spec, manifest.task, c.raw, manifest_raw, doc, blobs, partial)

    def _walk(self, tree_id: str, prefix: str, out: list[tuple[str, str]]) -> None:
        # A stack, not recursion: a tree crafted thousands of folders deep is read, not a crash.
        todo = [(tree_id, prefix)]
        while todo:
            oid, at = todo.pop()
            for item in read_tree(self.objects, oid):
                path = at + item.name.decode("utf-8", "surrogateescape")
                if stat.S_ISDIR(item.mode):
                    todo.append((item.oid, path + "/"))
                elif item.mode != MODE_GITLINK:  # a submodule's commit is not in this store
                    out.append((path, item.oid))


def _leaf_texts(doc: Any) -> list[str]:
    """The texts :func:`~gitstore.secrets.field_texts` gives for a decoded JSON document, in
    another order and without their paths: what :meth:`Scanner.clean` scans (a few times faster
    than walking the paths, which only a finding needs)."""
    out: list[str] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, key = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                k = str(k)
                if type(v) is str:  # most leaves of a manifest: _leaf inlined (push's cold scan)
                    out.append(f"{k}={v}" if k else v)
                elif isinstance(v, (dict, list)):
                    out.append(k)
                    stack.append((v, k))
                else:
                    out.append(_leaf(k, v))
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, (dict, list)):
                    stack.append((v, key))
                else:
                    out.append(_leaf(key, v))
        else:
            out.append(_leaf(key, value))
    return out


def _leaf(key: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is True or value is False or value is None:
        text = "true" if value is True else "false" if value is False else "null"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = json.dumps(value)
    return f"{key}={text}" if key else text


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


class Verdicts:
    """Clean verdicts of :meth:`Scanner.clean`, kept in the store: ids found clean, per rules.

    They live in ``<store>/gitstore/verdicts/``, which no transfer carries (push, pull, clone and
    bundles move objects and refs only): a store that received objects from elsewhere has no
    verdict about them and scans them before it sends them on; it never trusts a remote's.
    Each file holds sorted 20-byte ids and is named after the fingerprint of the rules it was
    made with (this module and :mod:`gitstore.secrets`), so new rules find no verdicts and scan
    everything again. Files are written whole (temp file, then rename) and merged into one once
    there are more than :data:`_VERDICT_FILES`. A verdict file that is lost only costs a scan;
    one that cannot be written is skipped.

    Args:
      gitdir: the store's Git directory.
    """

    def __init__(self, gitdir: str) -> None:
        self.dir = os.path.join(gitdir, "gitstore", "verdicts")
        self.rules = _fingerprint()

    def _files(self) -> list[str]:
        try:
            names = os.listdir(self.dir)
        except OSError:
            return []
        prefix = f"clean-{self.rules}-"
        return sorted(n for n in names if n.startswith(prefix) and n.endswith(".ids"))

    def load(self) -> set[bytes]:
        """Every id recorded clean under the current rules."""
        out: set[bytes] = set()
        for name in self._files():
            with contextlib.suppress(OSError):
                with open(os.path.join(self.dir, name), "rb") as f:
                    data = f.read()
                if len(data) % 20 == 0:  # a damaged file is no verdict
                    out.update(data[i : i + 20] for i in range(0, len(data), 20))
        return out

    def record(self, ids: Iterable[str], known: set[bytes]) -> None:
        """Record ``ids`` (hex) as clean; ``known``: what :meth:`load` gave (not written again)."""
        new = sorted({b for b in map(bytes.fromhex, ids)} - known)
        if not new:
            return
        with contextlib.suppress(OSError):
            os.makedirs(self.dir, exist_ok=True)
            self._write(b"".join(new))
            files = self._files()
            if len(files) > _VERDICT_FILES:
                self._merge(files)

    def _write(self, data: bytes) -> None:
        name = f"clean-{self.rules}-{os.urandom(8).hex()}.ids"
        # Verdicts are a cache: a crash that loses the newest costs a scan, never a wrong answer
        # (the file appears whole or not at all), so no fsync.
        with atomic_write(os.path.join(self.dir, name), fsync=False) as f:
            f.write(data)

    def _merge(self, files: list[str]) -> None:
        ids: set[bytes] = set()
        for name in files:
            with contextlib.suppress(OSError):
                with open(os.path.join(self.dir, name), "rb") as f:
                    data = f.read()
                if len(data) % 20 == 0:
                    ids.update(data[i : i + 20] for i in range(0, len(data), 20))
        self._write(b"".join(sorted(ids)))
        # Two merging at once both keep the union; removing what the other merged loses nothing.
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.dir, name))


def _fingerprint() -> str:
    h = hashlib.sha256()
    for path in _RULES:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]
