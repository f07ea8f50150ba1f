"""Between machines: remotes, push, pull, clone, sync and bundles over ordinary Git transports.

A remote is an ordinary Git remote recorded in the store's own git config (``remote.NAME.url``,
fetch refspec ``+refs/artifacts/*:refs/artifacts/*``), so stock git sees it too. Only
``refs/artifacts/<spec>/<task>`` refs move (all of them, or a spec/task subset); branches and
tags of a shared repository are never touched.

* :mod:`~gitstore.remote.config`: remotes listed, added and removed in the store's git config;
* :mod:`~gitstore.remote.transport`: a dulwich client per URL, credentials, and what goes wrong
  on the wire turned into gitstore's errors;
* :mod:`~gitstore.remote.scope`: which tasks a transfer covers;
* :mod:`~gitstore.remote.pull`: fetch, check every new version, then fast-forward or merge;
* :mod:`~gitstore.remote.push`: never rewind a remote ref, never send a secret unasked;
* :mod:`~gitstore.remote.merge`: a task's head from elsewhere brought in (fast-forward or a
  merge version that two machines make alike);
* :mod:`~gitstore.remote.sync`: clone, and pull-then-push until both sides agree;
* :mod:`~gitstore.remote.bundle`: bundle files written and read like a remote.

This package is the public face of these modules: the functions below are what the library
exports (and ``gitstore`` re-exports at top level).
"""

from __future__ import annotations

from gitstore.model import Refusal, Remote, TaskUpdate, TransferResult
from gitstore.remote.bundle import bundle_create, bundle_import
from gitstore.remote.config import FETCH_REFSPEC, add_remote, remotes, remove_remote
from gitstore.remote.pull import pull
from gitstore.remote.push import push
from gitstore.remote.sync import clone, sync
from gitstore.remote.transport import Progress

__all__ = [
    "FETCH_REFSPEC",
    "Progress",
    "Refusal",
    "Remote",
    "TaskUpdate",
    "TransferResult",
    "add_remote",
    "bundle_create",
    "bundle_import",
    "clone",
    "pull",
    "push",
    "remotes",
    "remove_remote",
    "sync",
]
