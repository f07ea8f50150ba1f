"""gitstore: artifacts of agent runs, versioned per task, in a bare Git repository.

Usage::

    from pathlib import Path
    from gitstore import Store

    with Store.open("runs.git", create=True) as store:
        v = store.put("spec-1/task-7", {"diff.diff": diff_text, "log.log": Path("run.log")},
                      run_id="run-42")
        store.get(v.artifacts[0].uri)

Importing gitstore loads only its error classes; every other public name loads its module on
first use, so neither a script that only catches errors nor ``gitstore --help`` pays for dulwich
or the network transports.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from gitstore.errors import (
    AmbiguousRevisionError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    ConflictError,
    CorruptTransferError,
    GitstoreError,
    InputError,
    IntegrityError,
    InvalidNameError,
    NotAStoreError,
    NotFoundError,
    PushRefusedError,
    QuotaExceededError,
    RejectedVersionError,
    RemoteAuthError,
    RemoteError,
    RemoteUnreachableError,
    SecretsFoundError,
    StoreError,
    StoreFullError,
    StoreNotFoundError,
    TaskNotFoundError,
    UsageError,
    VersionNotFoundError,
)

if TYPE_CHECKING:
    # What type checkers and readers see; at run time __getattr__ below loads each name from the
    # module _LAZY gives for it, on first use (a test keeps the two lists the same).
    from gitstore.backend.objects import BlobReader
    from gitstore.capture import Captured, CaptureDigest, CapturePolicy, Excerpt, capture
    from gitstore.client import HttpStore
    from gitstore.failures import FAILURE_NAME, render_failure
    from gitstore.ingest import guess_type
    from gitstore.model import (
        Alias,
        Artifact,
        ArtifactInfo,
        Diff,
        DiskUsage,
        Expiry,
        ExpungeReport,
        GcReport,
        Problem,
        PurgeHolder,
        PurgeReport,
        Refusal,
        Remote,
        RemovedArtifact,
        RetainPlan,
        RunDeletion,
        SecretFinding,
        SpecSummary,
        TaskDeletion,
        TaskHead,
        TaskPlan,
        TaskUpdate,
        Text,
        TransferResult,
        UsagePart,
        Version,
        VersionPlan,
        human_bytes,
    )
    from gitstore.names import artifact_uri, parse_address, parse_uri
    from gitstore.query import delete_run, find, iter_history, write_jsonl
    from gitstore.remote import add_remote, bundle_create, bundle_import, remotes, remove_remote

    # gitstore.remote's modules pull, push and sync are named as the functions they define: name
    # the functions by their modules, or a type checker cannot tell which is meant.
    from gitstore.remote.pull import pull
    from gitstore.remote.push import push
    from gitstore.remote.serve import GIT_MAY_WRITE, git_http_app
    from gitstore.remote.sync import clone, sync
    from gitstore.runner import (
        TEST_NAME,
        TaskRecord,
        artifact_ref,
        is_artifact_ref,
        record_task,
        resolve_ref,
    )
    from gitstore.secrets import Masker
    from gitstore.store import PendingPut, PutBatch, Store
    from gitstore.tokens import Token, Tokens

__version__ = "0.1.0"

__all__ = [
    "Alias",
    "AmbiguousRevisionError",
    "Artifact",
    "ArtifactInfo",
    "ArtifactNotFoundError",
    "ArtifactTooLargeError",
    "BlobReader",
    "CaptureDigest",
    "CapturePolicy",
    "Captured",
    "ConflictError",
    "FAILURE_NAME",
    "GIT_MAY_WRITE",
    "CorruptTransferError",
    "Diff",
    "DiskUsage",
    "Excerpt",
    "Expiry",
    "ExpungeReport",
    "GcReport",
    "GitstoreError",
    "HttpStore",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "Masker",
    "NotAStoreError",
    "NotFoundError",
    "Problem",
    "PurgeHolder",
    "PurgeReport",
    "Refusal",
    "Remote",
    "RemovedArtifact",
    "RetainPlan",
    "RunDeletion",
    "SecretFinding",
    "SecretsFoundError",
    "SpecSummary",
    "TEST_NAME",
    "TaskDeletion",
    "TaskHead",
    "TaskPlan",
    "TaskRecord",
    "TaskUpdate",
    "Text",
    "Token",
    "Tokens",
    "TransferResult",
    "UsagePart",
    "PushRefusedError",
    "QuotaExceededError",
    "RejectedVersionError",
    "RemoteAuthError",
    "RemoteError",
    "RemoteUnreachableError",
    "PendingPut",
    "PutBatch",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreNotFoundError",
    "TaskNotFoundError",
    "UsageError",
    "Version",
    "VersionNotFoundError",
    "VersionPlan",
    "__version__",
    "add_remote",
    "artifact_ref",
    "artifact_uri",
    "bundle_create",
    "bundle_import",
    "capture",
    "clone",
    "delete_run",
    "find",
    "git_http_app",
    "guess_type",
    "human_bytes",
    "is_artifact_ref",
    "iter_history",
    "parse_address",
    "parse_uri",
    "pull",
    "push",
    "record_task",
    "remotes",
    "remove_remote",
    "render_failure",
    "resolve_ref",
    "sync",
    "write_jsonl",
]

# Public name -> the module that defines it, loaded on first use. The errors above are the only
# names loaded with the package: the gitstore command (gitstore.cli, inside this package) needs
# them to start, and they cost next to nothing, while gitstore.store with dulwich takes about a
# quarter of a second to import and the network transports (gitstore.remote, dulwich.client,
# urllib3) more again: `gitstore --help` needs none of that.
_LAZY: dict[str, str] = {
    name: module
    for module, names in {
        "gitstore.capture": ("CaptureDigest", "Captured", "CapturePolicy", "Excerpt", "capture"),
        "gitstore.model": (
            "Alias",
            "Artifact",
            "ArtifactInfo",
            "Diff",
            "DiskUsage",
            "Expiry",
            "ExpungeReport",
            "GcReport",
            "Problem",
            "PurgeHolder",
            "PurgeReport",
            "Refusal",
            "Remote",
            "RemovedArtifact",
            "RetainPlan",
            "RunDeletion",
            "SecretFinding",
            "SpecSummary",
            "TaskDeletion",
            "TaskHead",
            "TaskPlan",
            "TaskUpdate",
            "Text",
            "TransferResult",
            "UsagePart",
            "Version",
            "human_bytes",
            "VersionPlan",
        ),
        "gitstore.names": ("artifact_uri", "parse_address", "parse_uri"),
        "gitstore.backend.objects": ("BlobReader",),
        "gitstore.ingest": ("guess_type",),
        "gitstore.query": ("delete_run", "find", "iter_history", "write_jsonl"),
        "gitstore.remote": (
            "add_remote",
            "bundle_create",
            "bundle_import",
            "remotes",
            "remove_remote",
        ),
        "gitstore.remote.pull": ("pull",),
        "gitstore.remote.push": ("push",),
        "gitstore.remote.serve": ("GIT_MAY_WRITE", "git_http_app"),
        "gitstore.remote.sync": ("clone", "sync"),
        "gitstore.failures": ("FAILURE_NAME", "render_failure"),
        "gitstore.runner": (
            "TEST_NAME",
            "TaskRecord",
            "artifact_ref",
            "is_artifact_ref",
            "record_task",
            "resolve_ref",
        ),
        "gitstore.secrets": ("Masker",),
        "gitstore.store": ("PendingPut", "PutBatch", "Store"),
        "gitstore.client": ("HttpStore",),
        "gitstore.tokens": ("Token", "Tokens"),
    }.items()
    for name in names
}

# Hidden from type checkers, which take the names from the imports above: with a __getattr__ in
# view, mypy would accept any attribute of gitstore, misspelt ones included.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Load a public name from its module on first use (PEP 562); later reads find it bound."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The package's names, the ones not loaded yet included (for dir() and completion)."""
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """The type of this package's module object: a submodule never hides a public name.

    Python binds a submodule on its package when the submodule is first imported. Importing
    gitstore.capture (gitstore.runner does) would so set ``gitstore.capture`` to the module,
    hiding the function ``capture`` that __getattr__ would have loaded.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
