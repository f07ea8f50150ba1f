"""gitstore: artifacts of agent runs, versioned per task, in a bare Git repository.

Usage::

    from pathlib import Path
    from gitstore import Store

    with Store.open("runs.git", create=True) as store:
        v = store.put("spec-1/task-7", {"diff.diff": diff_text, "log.log": Path("run.log")},
                      run_id="run-42")
        store.get(v.artifacts[0].uri)
"""

from __future__ import annotations

from gitstore.capture import Captured, CapturePolicy, Excerpt, capture
from gitstore.client import HttpStore
from gitstore.errors import (
    ArtifactNotFoundError,
    ConflictError,
    CorruptTransferError,
    GitstoreError,
    InputError,
    IntegrityError,
    InvalidNameError,
    NotAStoreError,
    NotFoundError,
    PushRefusedError,
    RejectedVersionError,
    RemoteAuthError,
    RemoteError,
    RemoteUnreachableError,
    SecretsFoundError,
    StoreError,
    StoreNotFoundError,
    TaskNotFoundError,
    UsageError,
    VersionNotFoundError,
)
from gitstore.model import (
    Artifact,
    ArtifactInfo,
    Diff,
    GcReport,
    Problem,
    Refusal,
    Remote,
    RunDeletion,
    SecretFinding,
    SpecSummary,
    TaskDeletion,
    TaskHead,
    TaskUpdate,
    TransferResult,
    Version,
)
from gitstore.names import artifact_uri, parse_address, parse_uri
from gitstore.objects import BlobReader
from gitstore.query import delete_run, find, iter_history, write_jsonl
from gitstore.remote import (
    add_remote,
    bundle_create,
    bundle_import,
    clone,
    pull,
    push,
    remotes,
    remove_remote,
    sync,
)
from gitstore.runner import TaskRecord, artifact_ref, is_artifact_ref, record_task, resolve_ref
from gitstore.secrets import Masker
from gitstore.store import Store, guess_type
from gitstore.tokens import Token, Tokens

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactInfo",
    "ArtifactNotFoundError",
    "BlobReader",
    "CapturePolicy",
    "Captured",
    "ConflictError",
    "CorruptTransferError",
    "Diff",
    "Excerpt",
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
    "Refusal",
    "Remote",
    "RunDeletion",
    "SecretFinding",
    "SecretsFoundError",
    "SpecSummary",
    "TaskDeletion",
    "TaskHead",
    "TaskRecord",
    "TaskUpdate",
    "Token",
    "Tokens",
    "TransferResult",
    "PushRefusedError",
    "RejectedVersionError",
    "RemoteAuthError",
    "RemoteError",
    "RemoteUnreachableError",
    "Store",
    "StoreError",
    "StoreNotFoundError",
    "TaskNotFoundError",
    "UsageError",
    "Version",
    "VersionNotFoundError",
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
    "guess_type",
    "is_artifact_ref",
    "iter_history",
    "parse_address",
    "parse_uri",
    "pull",
    "push",
    "record_task",
    "remotes",
    "remove_remote",
    "resolve_ref",
    "sync",
    "write_jsonl",
]
