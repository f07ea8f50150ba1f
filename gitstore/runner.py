"""For agent runners: record what a task produced in one call, and refer to it from run state.

:func:`record_task` turns a runner's outputs (diff, log, test results, extra files, a failure)
plus who and what produced them into ONE version of a task, masking secrets and capturing the
log with an excerpt on the way. :func:`artifact_ref` / :func:`resolve_ref` let a runner keep
``{"$artifact": uri}`` in its own JSON state instead of the bytes.

Everything here is built on :class:`~gitstore.store.Store`'s public calls; nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeGuard

from gitstore.capture import Captured, CapturePolicy, Excerpt, capture
from gitstore.errors import (
    GitstoreError,
    InputError,
    InvalidNameError,
    NotFoundError,
    UsageError,
)
from gitstore.failures import FAILURE_NAME, failure_record
from gitstore.model import Artifact, ArtifactInfo, Source, Version
from gitstore.names import URI_SCHEME, parse_uri
from gitstore.secrets import Masker
from gitstore.store import Store

__all__ = [
    "DIFF_NAME",
    "LOG_NAME",
    "REF_KEY",
    "TEST_NAME",
    "TaskRecord",
    "artifact_ref",
    "is_artifact_ref",
    "record_task",
    "resolve_ref",
]

DIFF_NAME = "diff.diff"
LOG_NAME = "log.log"
TEST_NAME = "test.json"
REF_KEY = "$artifact"

Text = str | bytes | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """What :func:`record_task` recorded.

    ``version`` is None only when ``strict=False`` and every part failed (nothing was recorded).
    ``uris`` maps each artifact recorded by this call to its URI (pinned to the new version);
    ``warnings`` says, one line each, what was not recorded and why, and which callbacks failed.
    """

    version: Version | None
    uris: Mapping[str, str]
    warnings: tuple[str, ...] = ()
    excerpts: Mapping[str, Excerpt] = dataclasses.field(default_factory=dict)
    callback_errors: tuple[str, ...] = ()

    @property
    def uri(self) -> Mapping[str, str]:
        """Alias of ``uris``: ``record.uri["log.log"]`` reads well."""
        return self.uris

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, for a runner's own state."""
        return {
            "spec": self.version.spec if self.version else None,
            "task": self.version.task if self.version else None,
            "version": self.version.version if self.version else None,
            "commit": self.version.commit if self.version else None,
            "uris": dict(self.uris),
            "warnings": list(self.warnings),
            "excerpts": {k: e.to_dict() for k, e in self.excerpts.items()},
            "callback_errors": list(self.callback_errors),
        }


def record_task(
    store: Store,
    address: str,
    *,
    diff: Text | None = None,
    log: Source | None = None,
    tests: Mapping[str, Any] | Text | None = None,
    files: Mapping[str, Source | Artifact] | None = None,
    failure: BaseException | Mapping[str, Any] | None = None,
    run_id: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    prompt_hash: str | None = None,
    tool_versions: Mapping[str, str] | None = None,
    source_repo: str | None = None,
    source_commit: str | None = None,
    parent_uris: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    message: str | None = None,
    tags: Mapping[str, str] | None = None,
    strict: bool = True,
    mask: bool = True,
    secrets: Sequence[str | bytes] = (),
    capture_policy: CapturePolicy | None = None,
    on_recorded: Callable[[str], object] | None = None,
    replace: bool = False,
) -> TaskRecord:
    """Record what a runner produced for ``SPEC/TASK`` as ONE new version.

    Args:
      store: where to record.
      address: ``SPEC/TASK``.
      diff: the diff (text, bytes or a path), stored as ``diff.diff``.
      log: the log (text, bytes, a path or a binary stream), captured as ``log.log`` with
        ``capture_policy`` (whole by default); its excerpt is in the result.
      tests: test results, a JSON-able dict or a path to a JSON file, stored as ``test.json``.
      files: extra artifacts by name (files, folders, bytes, text, :class:`Artifact`).
      failure: an exception or an error dict, stored as ``failure.json`` (see
        :func:`gitstore.failures.failure_record`).
      run_id, agent, model, prompt_hash, tool_versions, source_repo, source_commit,
        parent_uris, metadata: recorded on the version (``run_id`` as the version's run; the
        others as metadata keys of the same names, when given).
      message, tags: the version's message; tags on every artifact of this call.
      strict: True (default): a part that fails records nothing and raises an error naming the
        part. False: the failed part is left out, named in ``warnings``, the rest is recorded.
      mask: mask secrets in every text part and in the message, metadata and tags (default
        True): secret-named environment values, ``secrets`` given here, well-known token shapes.
        Binary content is never masked; a ``run_id`` holding a secret is refused
        (SecretsFoundError), as by ``Store.put(mask_secrets=...)``.
      secrets: literal secrets to mask as well.
      capture_policy: how the log is stored and excerpted (default: stored whole).
      on_recorded: called with each recorded URI (to update a task registry); an exception it
        raises is reported in ``callback_errors`` (and ``warnings``), never loses the version.
      replace: start from an empty set instead of the previous version's artifacts.

    Absent parts are simply absent: nothing is stored for them.

    Raises:
      UsageError: no part was given.
      GitstoreError: with ``strict=True``, the first part that failed (the message names it);
        or what :meth:`Store.put` raises.
    """
    masker = Masker(secrets) if mask else None
    tmpdir = os.path.join(store.path, "objects") if store.path else None
    parts: dict[str, Source | Artifact] = {}
    warnings: list[str] = []
    excerpts: dict[str, Excerpt] = {}
    given = 0

    def fail(part: str, error: BaseException) -> None:
        detail = _detail(error)
        if strict:
            cls = type(error) if isinstance(error, GitstoreError) else InputError
            raise cls(f"part {part!r} failed, nothing recorded: {detail}") from error
        warnings.append(f"part {part!r} not recorded: {detail}")

    with contextlib.ExitStack() as resources:
        if diff is not None:
            given += 1
            try:
                parts[DIFF_NAME] = Artifact(_text_source(diff, "diff"), content_type="text/x-diff")
                store.check_put(address, {DIFF_NAME: parts[DIFF_NAME]})
            except (GitstoreError, OSError) as e:
                parts.pop(DIFF_NAME, None)
                fail("diff", e)
        if log is not None:
            given += 1
            try:
                cap: Captured = resources.enter_context(
                    capture(
                        log,
                        capture_policy,
                        masker=masker,
                        content_type="text/plain",
                        tmpdir=tmpdir,
                    )
                )
                parts[LOG_NAME] = cap.artifact
                excerpts[LOG_NAME] = cap.excerpt
            except (GitstoreError, OSError) as e:
                fail("log", e)
        if tests is not None:
            given += 1
            try:
                parts[TEST_NAME] = Artifact(_json_bytes(tests), content_type="application/json")
            except (GitstoreError, OSError, ValueError, TypeError) as e:
                fail("tests", e)
        for name, value in (files or {}).items():
            given += 1
            try:
                if name in parts:
                    raise InvalidNameError(f"artifact {name!r} is also a named part of the task")
                store.check_put(address, {name: value})
                parts[name] = value
            except (GitstoreError, OSError) as e:
                fail(f"files[{name!r}]", e)
        if failure is not None:
            given += 1
            try:
                if FAILURE_NAME in parts:
                    raise InvalidNameError(f"artifact {FAILURE_NAME!r} is given in files too")
                names = list(parts)
                record = failure_record(failure, artifacts=names, masker=masker)
                body = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
                # Already masked field by field: the count is what failure_record found.
                parts[FAILURE_NAME] = Artifact(
                    body, content_type="application/json", masked_secrets=record["masked_secrets"]
                )
            except (GitstoreError, OSError, ValueError, TypeError) as e:
                fail("failure", e)
        if not given:
            raise UsageError("record_task needs at least one part (diff, log, tests, files ...)")
        if not parts:
            return TaskRecord(None, {}, tuple(warnings), excerpts)
        version = store.put(
            address,
            parts,
            run_id=run_id,
            message=message,
            metadata=_metadata(
                metadata,
                agent=agent,
                model=model,
                prompt_hash=prompt_hash,
                tool_versions=dict(tool_versions) if tool_versions else None,
                source_repo=source_repo,
                source_commit=source_commit,
                parent_uris=list(parent_uris) if parent_uris else None,
            ),
            tags=tags,
            replace=replace,
            mask_secrets=masker or False,
        )
    recorded = sorted(
        a.name for a in version.artifacts if any(_under(a.name, p, v) for p, v in parts.items())
    )
    uris = {name: version.artifact(name).uri for name in recorded}
    callback_errors: list[str] = []
    if on_recorded is not None:
        for uri in uris.values():
            try:
                on_recorded(uri)
            except Exception as e:
                callback_errors.append(f"on_recorded({uri}) failed: {type(e).__name__}: {e}")
    return TaskRecord(
        version, uris, tuple(warnings + callback_errors), excerpts, tuple(callback_errors)
    )


# -- references inside run state ---------------------------------------------------------------


def artifact_ref(target: str | Version | ArtifactInfo, name: str | None = None) -> dict[str, str]:
    """``{"$artifact": uri}``: what a runner keeps in its JSON state instead of the bytes.

    ``target`` is what runners pass around: a ``gitstore://`` URI, an :class:`ArtifactInfo`
    (its pinned URI), or a :class:`Version` with the artifact's ``name``.

    Raises:
      InvalidNameError: a string that is no gitstore URI.
      ArtifactNotFoundError: the version has no artifact ``name``.
      UsageError: a ``name`` where none applies, or none where one is needed.
    """
    return {REF_KEY: _uri_of(target, name)}


def _uri_of(target: object, name: str | None) -> str:
    """The URI that ``target`` (and ``name``) designate; see :func:`artifact_ref`."""
    if isinstance(target, Version):
        if name is None:
            raise UsageError(f"{target.address}: which artifact? (give a name)")
        return target.artifact(name).uri
    if name is not None:
        raise UsageError("a name goes with a Version, not with a URI or an artifact")
    if isinstance(target, ArtifactInfo):
        return target.uri
    if isinstance(target, str) and target.startswith(URI_SCHEME):
        parse_uri(target)  # refused here, not later when the ref is resolved
        return target
    raise InvalidNameError(f"{target!r} is not a gitstore:// URI")


def is_artifact_ref(value: object) -> TypeGuard[dict[str, str]]:
    """True only for ``{"$artifact": "gitstore://..."}`` (a dict with exactly that one key)."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get(REF_KEY), str)
        and value[REF_KEY].startswith(URI_SCHEME)
    )


def resolve_ref(
    store: Store,
    ref: Mapping[str, str] | str | Version | ArtifactInfo,
    name: str | None = None,
    *,
    as_: Literal["bytes", "text", "json"] = "bytes",
    missing_ok: bool = False,
) -> Any:
    """The bytes (or text, or parsed JSON) a ref points at.

    ``ref`` is an artifact ref (``{"$artifact": uri}``), a URI, an :class:`ArtifactInfo`, or a
    :class:`Version` with the artifact's ``name``. A pinned URI resolves to the same bytes after
    later versions of the task; an unpinned one (``gitstore://SPEC/TASK/NAME``) to the latest.

    Raises:
      NotFoundError: the version or artifact is gone (``missing_ok=True`` returns None instead).
      InvalidNameError: ``ref`` is not a ref or a URI.
    """
    if isinstance(ref, Mapping):
        if not is_artifact_ref(ref):
            raise InvalidNameError(f"{ref!r} is not an artifact ref ({{{REF_KEY!r}: uri}})")
        uri = _uri_of(ref[REF_KEY], name)
    else:
        uri = _uri_of(ref, name)
    try:
        if as_ == "json":
            return store.json(uri)
        data = store.get(uri)
    except NotFoundError:
        if missing_ok:
            return None
        raise
    if as_ == "text":
        return data.decode("utf-8")
    if as_ != "bytes":
        raise UsageError(f"as_={as_!r}: give 'bytes', 'text' or 'json'")
    return data


# -- helpers -----------------------------------------------------------------------------------


def _under(name: str, part: str, value: Source | Artifact) -> bool:
    """True when artifact ``name`` came from the part ``part`` of this call."""
    if name == part or name.startswith(part.rstrip("/") + "/"):
        return True
    if part not in (".", ""):
        return False
    # A folder put at the top ("."): its files' names are relative to it.
    source = value.source if isinstance(value, Artifact) else value
    if not isinstance(source, os.PathLike):
        return False
    return os.path.isfile(os.path.join(os.fspath(source), *name.split("/")))


def _detail(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, GitstoreError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return str(error) or type(error).__name__


def _text_source(value: Text, part: str) -> Source:
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")
        return value
    raise UsageError(f"{part}: give text, bytes or a path, not a {type(value).__name__}")


def _json_bytes(value: Mapping[str, Any] | Text) -> bytes:
    """Test results as JSON bytes; a file or text is checked to be JSON."""
    if isinstance(value, Mapping):
        return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"
    if isinstance(value, os.PathLike):
        with open(os.fspath(value), "rb") as f:
            data = f.read()
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, bytes):
        data = value
    else:
        raise UsageError(f"tests: give a dict or a JSON file, not a {type(value).__name__}")
    try:
        json.loads(data)
    except ValueError as e:
        raise InputError(f"not JSON ({e})") from None
    return data


def _metadata(extra: Mapping[str, Any] | None, **known: Any) -> dict[str, Any]:
    out = dict(extra or {})
    out.update({k: v for k, v in known.items() if v is not None})
    return out
