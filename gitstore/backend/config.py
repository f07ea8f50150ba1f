"""The store's git config: read, turned into settings, and updated under git's lock.

Settings live in the repository's own ``config`` file, where stock git reads and writes them
too (``git config gitstore.fsync false``). :func:`settings` reads the ``gitstore.*`` keys and the
identity; :func:`update` changes the file as ``git config`` does: under ``config.lock``, reading
the current file inside the lock (so a concurrent change is kept, not overwritten) and renaming
the whole new file into place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TypeVar

from dulwich.config import ConfigFile

from gitstore._fs import Busy, atomic_write
from gitstore.errors import StoreError

__all__ = [
    "DEFAULT_IDENTITY",
    "Settings",
    "parse_size",
    "read",
    "settings",
    "subsections",
    "update",
]

DEFAULT_IDENTITY = b"gitstore <gitstore@localhost>"
# How long an update waits for another writer's config.lock before giving up.
LOCK_WAIT = 10.0

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a store's config decides (defaults: an in-memory store, or a config without them).

    Attributes:
      fsync: ``gitstore.fsync`` (default true): fsync every new object, its folder and the ref
        before a put returns, and every file gitstore writes whole (caches, exports, bundles), so
        that what was acknowledged survives a power loss; false relies on atomic renames only.
      compression: ``gitstore.compression`` (default 1): zlib level for new objects.
      cas_timeout: ``gitstore.casTimeout`` (default 60): seconds a write keeps retrying a
        contended ref.
      identity: ``user.name <user.email>``: the author of version commits.
      max_size: ``gitstore.maxSize`` (default none): the bytes on disk the store may reach; a
        put that would cross it is refused.
      max_artifact_size: ``gitstore.maxArtifactSize`` (default none): the largest artifact a
        put accepts, in bytes.
    """

    fsync: bool = True
    compression: int = 1
    cas_timeout: float = 60.0
    identity: bytes = DEFAULT_IDENTITY
    max_size: int | None = None
    max_artifact_size: int | None = None


def read(gitdir: str) -> ConfigFile:
    """The repository's config as git reads it (included files too); empty if there is none.

    Raises StoreError for a config that cannot be read or parsed.
    """
    path = os.path.join(gitdir, "config")
    try:
        return ConfigFile.from_path(path)
    except FileNotFoundError:
        return ConfigFile()
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: cannot be read ({e})") from None


def settings(gitdir: str) -> Settings:
    """The :class:`Settings` of the store at ``gitdir``; StoreError names a bad value."""
    config = read(gitdir)
    return Settings(
        fsync=_bool(config, "fsync", True),
        compression=_int(config, "compression", 1, 0, 9),
        cas_timeout=float(_int(config, "casTimeout", 60, 1, 86400)),
        identity=_identity(config),
        max_size=_size(config, "maxSize"),
        max_artifact_size=_size(config, "maxArtifactSize"),
    )


def subsections(gitdir: str, section: str) -> dict[str, dict[str, str]]:
    """Every ``[SECTION "NAME"]`` of the config: NAME -> its keys and values.

    Keys are lower case (git compares them so); of a key given twice, the last value wins, as
    ``git config --get`` answers. StoreError for a config that cannot be read.
    """
    out: dict[str, dict[str, str]] = {}
    config = read(gitdir)
    for name in config.sections():
        if len(name) == 2 and name[0].lower() == section.encode():
            keys = out.setdefault(name[1].decode(errors="replace"), {})
            for key, value in config.items(name):
                keys[key.decode(errors="replace").lower()] = value.decode(errors="replace")
    return out


def update(gitdir: str, change: Callable[[ConfigFile], _T], *, fsync: bool = True) -> _T:
    """Apply ``change`` to the config file and write it back whole; return what it returns.

    The file is read inside ``config.lock`` as it stands (its includes not expanded, so that
    they stay includes), and written only if ``change`` returns: an error it raises leaves the
    file as it was.

    Raises:
      StoreError: the config cannot be read, or another writer held its lock for too long.
    """
    path = os.path.join(gitdir, "config")
    try:
        with atomic_write(path, lock=True, wait=LOCK_WAIT, fsync=fsync) as out:
            try:
                config = ConfigFile.from_path(path, expand_includes=False)
            except FileNotFoundError:
                config = ConfigFile()
            except (OSError, ValueError) as e:
                raise StoreError(f"{path}: cannot be read ({e})") from None
            result = change(config)
            config.write_to_file(out)
    except Busy:
        raise StoreError(f"{path}: another writer holds config.lock; try again") from None
    return result


def _bool(config: ConfigFile, key: str, default: bool) -> bool:
    try:
        raw = config.get((b"gitstore",), key.encode())
    except KeyError:
        return default
    value = raw.decode().strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise StoreError(f"gitstore.{key} = {value!r} is not a boolean")


def _int(config: ConfigFile, key: str, default: int, lo: int, hi: int) -> int:
    try:
        raw = config.get((b"gitstore",), key.encode())
    except KeyError:
        return default
    try:
        value = int(raw.decode().strip())
    except ValueError:
        raise StoreError(f"gitstore.{key} = {raw.decode()!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise StoreError(f"gitstore.{key} = {value} is outside {lo}..{hi}")
    return value


# git's integer suffixes (``git config --type=int``): k, m, g, in powers of 1024.
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """A size as git reads one: digits with an optional ``k``, ``m`` or ``g`` (any case,
    powers of 1024): ``10G``, ``512m``, ``1048576``. ValueError for anything else."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else ""
    digits = value[: len(value) - len(unit)]
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"{text!r} is not a size (digits, then k, m or g if you like)")
    return int(digits) * _UNITS[unit]


def _size(config: ConfigFile, key: str) -> int | None:
    try:
        raw = config.get((b"gitstore",), key.encode())
    except KeyError:
        return None
    try:
        value = parse_size(raw.decode())
    except (ValueError, UnicodeDecodeError):
        raise StoreError(
            f"gitstore.{key} = {raw.decode(errors='replace')!r} is not a size "
            "(bytes, or with a unit as git reads it: 512k, 100m, 10g)"
        ) from None
    if value < 1:
        raise StoreError(f"gitstore.{key} = {value} must be at least 1 byte")
    return value


def _identity(config: ConfigFile) -> bytes:
    try:
        name = config.get((b"user",), b"name")
        email = config.get((b"user",), b"email")
    except KeyError:
        return DEFAULT_IDENTITY
    return name + b" <" + email + b">"
