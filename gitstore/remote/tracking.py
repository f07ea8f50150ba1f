"""Remote-tracking refs: what each remote was last seen to hold, per task.

After a push or a pull with a named remote, ``refs/remotes/<remote>/artifacts/<spec>/<task>``
names the head that remote holds, where stock git's
``git fetch REMOTE '+refs/artifacts/*:refs/remotes/REMOTE/artifacts/*'`` would put it. Retention
reads them (``--min-copies``: a version the tracking refs of N remotes reach is on N remotes).
Only heads whose objects this store holds are recorded, so every ref stays readable by
``git fsck``; each moves through the compare-and-swap loop like every other ref.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitstore import names as _names
from gitstore.errors import InvalidNameError
from gitstore.store import Store

__all__ = ["record", "tracking_ref"]


def tracking_ref(remote: str, key: str) -> str:
    """The remote-tracking ref of task ``SPEC/TASK`` for ``remote``."""
    return f"refs/remotes/{remote}/artifacts/{key}"


def record(store: Store, remote: str, heads: Mapping[str, str]) -> None:
    """Remember that ``remote`` holds ``heads`` (``SPEC/TASK -> commit``).

    A transfer to a bare URL (no remote of that name in the config) records nothing: there is
    no name to keep the state under.
    """
    try:
        _names.check_component(remote, "remote")
    except InvalidNameError:
        return
    refs = store.versions.refs
    for key, commit in sorted(heads.items()):
        if not store.versions.has(commit):
            continue
        ref = tracking_ref(remote, key)

        def attempt(ref: str = ref, commit: str = commit) -> bool | None:
            old = refs.get(ref)
            return True if old == commit or refs.cas(ref, old, commit) else None

        store.versions.retry(ref, attempt)
