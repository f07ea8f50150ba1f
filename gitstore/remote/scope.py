"""Which tasks a transfer covers, and task refs as the wire names them."""

from __future__ import annotations

from collections.abc import Sequence

from dulwich.refs import Ref

from gitstore import names as _names
from gitstore.errors import GitstoreError
from gitstore.names import REFS_PREFIX

__all__ = ["Scope", "ref_of", "task_of"]


class Scope:
    """Which tasks a transfer covers: all, or some specs and tasks."""

    def __init__(self, items: Sequence[str]) -> None:
        self.specs: set[str] = set()
        self.tasks: set[str] = set()
        for item in items:
            addr = _names.parse_address(item, allow_rev=False)
            if addr.task is None:
                self.specs.add(addr.spec)
            else:
                self.tasks.add(f"{addr.spec}/{addr.task}")
        self.all = not items

    def covers(self, key: str) -> bool:
        """Is task ``SPEC/TASK`` in the scope?"""
        return self.all or key in self.tasks or key.split("/", 1)[0] in self.specs


def task_of(ref: bytes) -> str | None:
    """``SPEC/TASK`` of a task ref, or None for any other ref."""
    if not ref.startswith(REFS_PREFIX.encode()) or ref.endswith(b"^{}"):
        return None
    parts = ref[len(REFS_PREFIX) :].decode("utf-8", "replace").split("/")
    if len(parts) != 2:
        return None
    try:
        for p in parts:
            _names.check_component(p)
    except GitstoreError:
        return None
    return "/".join(parts)


def ref_of(key: str) -> Ref:
    """The task ref of ``SPEC/TASK``, as the wire names it."""
    return Ref((REFS_PREFIX + key).encode())
