"""Annotated tag objects: how an alias is written (a tag naming a version) and read back.

An alias ref (``refs/gitstore/aliases/<spec>/<task>/<name>``) points at an annotated tag object,
not at the version's commit directly: the tag records WHEN the alias was set (its tagger time),
which is what lets two machines that disagree about an alias agree on one value (the later one)
without a history of their own, and it keeps the version reachable (gc and stock git follow
tags). A removed alias is a tag of a small blob saying so (a tombstone), so that a removal
travels between stores like a move does instead of coming back with the next pull.

Above the backend nothing handles dulwich's classes: a tag is read as a :class:`TagInfo`.
"""

from __future__ import annotations

from typing import NamedTuple

from dulwich.objects import Blob, Commit, ObjectID, Tag

from gitstore.backend.objects import ObjectBackend
from gitstore.backend.trees import KindError

__all__ = ["TagInfo", "read_tag", "write_tag"]


class TagInfo(NamedTuple):
    """An annotated tag as gitstore reads it."""

    oid: str
    name: str  # the tag's own name field
    target: str  # the object it names
    kind: str  # "commit" or "blob" (anything else is refused by readers of aliases)
    tagger: bytes
    time: int  # the tagger's time, seconds since the epoch
    message: bytes


def write_tag(
    objects: ObjectBackend,
    name: str,
    *,
    target: str | None,
    message: str,
    identity: bytes,
    when: int,
) -> str:
    """Write an annotated tag named ``name`` at time ``when`` and return its id.

    ``target`` is a commit that exists; None writes a tombstone instead: a tag of a blob holding
    ``message`` (written with it, in one pack).
    """
    objs: list[Blob | Tag] = []
    tag = Tag()
    if target is None:
        blob = Blob.from_string(message.encode("utf-8"))
        objs.append(blob)
        tag.object = (Blob, blob.id)
    else:
        tag.object = (Commit, ObjectID(target.encode()))
    tag.name = name.encode("utf-8")
    tag.tagger = identity
    tag.tag_time = when
    tag.tag_timezone = 0
    tag.message = message.encode("utf-8")
    objs.append(tag)
    objects.add_objects(objs)
    return tag.id.decode()


def read_tag(objects: ObjectBackend, oid: str) -> TagInfo:
    """Tag ``oid``; KindError if it is no tag, IntegrityError if it cannot be read."""
    obj = objects.get(oid)
    if not isinstance(obj, Tag):
        raise KindError(oid, obj.type_name.decode(), "tag")
    cls, target = obj.object
    return TagInfo(
        oid,
        obj.name.decode("utf-8", "replace"),
        target.decode(),
        cls.type_name.decode(),
        obj.tagger or b"",
        int(obj.tag_time or 0),
        obj.message or b"",
    )
