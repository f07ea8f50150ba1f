"""The one exception hierarchy of gitstore, each class carrying its CLI exit code.

::

    GitstoreError                 1   root; never raised bare
    ├── UsageError                2   arguments that do not fit together
    ├── InvalidNameError          3   a spec, task, artifact name, address or URI that is refused
    ├── NotFoundError             4   something asked for is not there
    │   ├── StoreNotFoundError    4     no store at that path
    │   ├── TaskNotFoundError     4     no ref for that spec/task
    │   ├── VersionNotFoundError  4     no such version in the task's history
    │   └── ArtifactNotFoundError 4     no such name in that version
    ├── ConflictError             5   a write lost every compare-and-swap within its bound
    ├── IntegrityError            6   stored bytes do not match their recorded identity
    ├── InputError                7   a file to put is missing, unreadable, or changed while read
    ├── StoreError                8   the path is not a usable store (not a bare repo, bad config)
    ├── RemoteError               9   a transfer with another store failed (root of the next five)
    │   ├── PushRefusedError      10    push left alone tasks the remote has versions of we lack
    │   ├── RemoteUnreachableError 11   the remote cannot be reached (no such host, port, path)
    │   ├── RemoteAuthError       12    the remote refused our credentials (or asked for some)
    │   ├── NotAStoreError        13    the remote answers but is not a Git repository or a store
    │   ├── CorruptTransferError  14    the pack or bundle received is damaged; nothing applied
    │   └── RejectedVersionError  15    a version received breaks the store's rules; nothing applied
    └── QuotaExceededError        16  a put would cross a limit in the store's config (no write)
        ├── StoreFullError        16    gitstore.maxSize: the store's bytes on disk
        └── ArtifactTooLargeError 16    gitstore.maxArtifactSize: one artifact

``QuotaExceededError`` (16, under the root) is a put refused by a limit of the store's config,
before anything was written: ``StoreFullError`` (``gitstore.maxSize``) and
``ArtifactTooLargeError`` (``gitstore.maxArtifactSize``) say which.

``SecretsFoundError`` (20, under the root) is a finding, not a broken store: ``gitstore scan``
found secret-shaped strings in what is stored.

``IntegrityError`` is deliberately not a ``NotFoundError``: a corrupt object must never be swallowed
by a handler that treats "missing" as an ordinary answer.

The CLI maps these to exit codes in one place (``cli/main.py``); any other exception is a bug and
exits 70.
"""

from __future__ import annotations

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactTooLargeError",
    "ConflictError",
    "CorruptTransferError",
    "GitstoreError",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "NotAStoreError",
    "NotFoundError",
    "PushRefusedError",
    "QuotaExceededError",
    "RejectedVersionError",
    "RemoteAuthError",
    "RemoteError",
    "RemoteUnreachableError",
    "SecretsFoundError",
    "StoreError",
    "StoreFullError",
    "StoreNotFoundError",
    "TaskNotFoundError",
    "UsageError",
    "VersionNotFoundError",
]


class GitstoreError(Exception):
    """Root of every error gitstore raises on purpose."""

    exit_code: int = 1


class UsageError(GitstoreError):
    """Arguments that do not fit together (for example stdin without a name)."""

    exit_code = 2


class InvalidNameError(GitstoreError, ValueError):
    """A spec, task or artifact name, an address or a URI that gitstore refuses."""

    exit_code = 3


class NotFoundError(GitstoreError):
    """Something asked for is not in the store."""

    exit_code = 4


class StoreNotFoundError(NotFoundError):
    """No store at the given path (and it was not asked to create one)."""


class TaskNotFoundError(NotFoundError):
    """The spec/task has no ref."""


class VersionNotFoundError(NotFoundError):
    """The revision does not name a version of that task."""


class ArtifactNotFoundError(NotFoundError):
    """The version has no artifact of that name."""


class ConflictError(GitstoreError):
    """A write could not win the compare-and-swap on its ref within its retry bound."""

    exit_code = 5


class IntegrityError(GitstoreError):
    """Stored bytes do not match the identity recorded for them (a corrupt or missing object)."""

    exit_code = 6


class InputError(GitstoreError):
    """Input to a put that cannot be read: a missing or unreadable path, or a file that changed."""

    exit_code = 7


class StoreError(GitstoreError):
    """The path exists but is not a usable gitstore (not a bare Git repository, bad setting)."""

    exit_code = 8


class RemoteError(GitstoreError):
    """A push, pull, clone or bundle transfer failed (the local store's refs are untouched)."""

    exit_code = 9


class PushRefusedError(RemoteError):
    """Push refused some tasks: the remote has versions of them that we lack ("pull first")."""

    exit_code = 10


class RemoteUnreachableError(RemoteError):
    """The remote cannot be reached: no such path, host or port, or the connection dropped."""

    exit_code = 11


class RemoteAuthError(RemoteError):
    """The remote asked for credentials, or refused the ones given."""

    exit_code = 12


class NotAStoreError(RemoteError):
    """The remote answers but is not a Git repository, or its task refs are not versions."""

    exit_code = 13


class CorruptTransferError(RemoteError):
    """The pack or bundle received is damaged; no ref was moved."""

    exit_code = 14


class RejectedVersionError(RemoteError):
    """A version received is not one this store accepts: a name that could escape a folder, a
    tree that does not match its manifest, a commit of another task ...; no ref was moved."""

    exit_code = 15


class QuotaExceededError(GitstoreError):
    """A put refused by a limit of the store's config (nothing was written); the message says
    the limit, the size, what to delete and how to raise the limit."""

    exit_code = 16


class StoreFullError(QuotaExceededError):
    """The put would bring the store's bytes on disk over ``gitstore.maxSize``."""


class ArtifactTooLargeError(QuotaExceededError):
    """An artifact is larger than ``gitstore.maxArtifactSize``."""


class SecretsFoundError(GitstoreError):
    """A scan found secret-shaped strings in stored artifacts (each finding names where)."""

    exit_code = 20
