"""Finding secrets already stored: :func:`scan` reads every artifact a scope's history holds.

A finding names the spec, task, version (commit), artifact and line, and the kind of secret
(``github token``, ``private key`` ...), never the secret itself. Each distinct blob is read once,
and reported at the newest version of each task that holds it (where a reader would look first).
Binary content (a NUL byte in the first 8 KiB) is skipped: token shapes in it are noise.

Push can run the same scan on what it is about to send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from gitstore import names as _names
from gitstore._io import Prefixed
from gitstore.errors import TaskNotFoundError
from gitstore.secrets import Masker

if TYPE_CHECKING:
    from gitstore.store import Store

__all__ = ["SecretFinding", "scan"]

_BINARY_WINDOW = 8192


@dataclasses.dataclass(frozen=True)
class SecretFinding:
    """A secret-shaped string in a stored artifact (where it is and what kind, not the secret)."""

    spec: str
    task: str
    commit: str
    name: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.spec}/{self.task}@{self.commit[:12]} {self.name}:{self.line}: {self.kind}"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form."""
        return dataclasses.asdict(self)


def scan(
    store: Store, scope: str | None = None, *, masker: Masker | None = None
) -> Iterator[SecretFinding]:
    """Secret-shaped strings in every version of every task in ``scope``.

    Args:
      store: the store to read.
      scope: None (everything), ``SPEC`` or ``SPEC/TASK``.
      masker: what counts as a secret (default: the well-known token shapes only; environment
        values of the scanning process are not secrets of the stored runs).

    Raises:
      TaskNotFoundError: ``SPEC/TASK`` has no versions.
    """
    masker = masker or Masker(env={})
    if scope is None:
        heads = store.heads()
    else:
        addr = _names.parse_address(scope, allow_rev=False)
        heads = store.heads(addr.spec)
        if addr.task is not None:
            key = f"{addr.spec}/{addr.task}"
            if key not in heads:
                raise TaskNotFoundError(f"no task {key}")
            heads = {key: heads[key]}
    cache: dict[str, list[tuple[int, str]]] = {}
    for key in heads:
        seen: set[str] = set()
        for version in store.log(key):
            for art in version.artifacts:
                if art.oid in seen:
                    continue
                seen.add(art.oid)
                if art.oid not in cache:
                    cache[art.oid] = _scan_blob(store, art.uri, masker)
                for line, kind in cache[art.oid]:
                    yield SecretFinding(
                        version.spec, version.task, version.commit, art.name, line, kind
                    )


def _scan_blob(store: Store, uri: str, masker: Masker) -> list[tuple[int, str]]:
    with store.open_artifact(uri) as f:
        head = f.read(_BINARY_WINDOW)
        if b"\0" in head:
            return []
        stream = Prefixed(head, cast(IO[bytes], f))
        return [(x.line, x.kind) for x in masker.scan_stream(cast(BinaryIO, stream))]
