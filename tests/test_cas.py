"""The one compare-and-swap retry loop (gitstore.cas), as put, rm_task and a pull's merge meet it.

Contention is made with ref backends that wrap the real ones and lose swaps on purpose, passed to
``Store(...)`` like any backend: no private attribute is patched.
"""

from __future__ import annotations

import pytest

from gitstore import ConflictError, Store
from gitstore.backend.config import Settings
from gitstore.backend.objects import MemoryObjects
from gitstore.backend.refs import Busy, MemoryRefs
from gitstore.cas import FIRST_DELAY, MAX_DELAY, backoff
from gitstore.remote.merge import integrate


class LosingRefs(MemoryRefs):
    """Refs whose first ``losses`` swaps and deletes fail as a live writer's lock makes them."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.tries = 0

    def _lose(self) -> None:
        self.tries += 1
        if self.tries <= self.losses:
            raise Busy("refs/artifacts/...lock")

    def cas(self, name: str, old: str | None, new: str) -> bool:
        self._lose()
        return super().cas(name, old, new)

    def delete(self, name: str, old: str) -> bool:
        self._lose()
        return super().delete(name, old)


def contended(losses: int, timeout: float = 60.0) -> tuple[Store, LosingRefs]:
    refs = LosingRefs(losses)
    return Store(MemoryObjects(), refs, settings=Settings(cas_timeout=timeout)), refs


def test_waits_grow_to_a_cap_and_are_drawn_at_random() -> None:
    """Writers that collided must not retry in lockstep: the same attempt waits differently."""
    for attempt in range(12):
        cap = min(MAX_DELAY, FIRST_DELAY * 2**attempt)
        waits = [backoff(attempt) for _ in range(50)]
        assert all(0 <= w <= cap for w in waits)
        assert len(set(waits)) > 1


def test_a_put_that_loses_swaps_tries_again_and_lands_once() -> None:
    store, refs = contended(losses=5)
    v = store.put("s/t", {"a.txt": "1"})
    assert refs.tries == 6
    assert [x.commit for x in store.log("s/t")] == [v.commit]


def test_a_put_gives_up_with_a_conflict_naming_the_ref_and_moves_nothing() -> None:
    store, _ = contended(losses=10**9, timeout=0.05)
    with pytest.raises(ConflictError, match=r"refs/artifacts/s/t: gave up after \d+ attempts"):
        store.put("s/t", {"a.txt": "1"})
    assert store.heads() == {}


def test_rm_task_gives_up_the_same_way() -> None:
    store, refs = contended(losses=0, timeout=0.05)
    store.put("s/t", {"a.txt": "1"})
    refs.losses = 10**9
    with pytest.raises(ConflictError, match="refs/artifacts/s/t"):
        store.rm_task("s/t")
    assert "s/t" in store.heads()


def test_a_pull_s_merge_uses_the_same_loop_and_says_what_it_brought_in() -> None:
    store, refs = contended(losses=0, timeout=0.05)
    theirs = store.put("s/t", {"a.txt": "1"}).commit
    refs.losses = refs.tries + 3
    assert integrate(store.versions, "s", "u", theirs).action == "created"
    refs.losses = 10**9
    with pytest.raises(ConflictError, match=f"to bring in {theirs}"):
        integrate(store.versions, "s", "v", theirs)
    assert "s/v" not in store.heads()
