"""Access tokens for ``gitstore serve``: who may read, write or administer a store over HTTP.

A token is a random secret (``gst_`` and 43 url-safe characters, 256 bits) that a client sends as
``Authorization: Bearer TOKEN``. The store keeps only its SHA-256, with the token's name, scope and
optional spec pattern, in ``<gitdir>/gitstore/tokens.json``: a plain file beside the refs, not a
ref, so push, pull and clone never carry it to another store. The secret itself is shown once, by
:meth:`Tokens.add`, and cannot be read back.

Scopes are ordered: ``read`` < ``write`` < ``admin``; a token allows what its scope and every lower
scope allow. A spec pattern (``fnmatch`` over the SPEC, ``fix-*``) limits a token to the specs it
matches. SHA-256 of a 256-bit random secret needs no slow key derivation (nothing to guess), and
:meth:`Tokens.check` compares digests with :func:`hmac.compare_digest` against every entry, so
the time it takes says nothing about which entry, if any, matched.

The file is rewritten whole through a temp file, fsync and rename, under an ``flock`` on
``tokens.json.lock`` so that two ``gitstore token add`` never lose each other's entry; a server
re-reads it when its size, mtime or inode change, so a token added or removed takes effect on
the next request without a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from gitstore.errors import InvalidNameError, NotFoundError, StoreError, UsageError
from gitstore.meta import now_iso
from gitstore.names import check_component

__all__ = ["SCOPES", "TOKEN_PREFIX", "Token", "Tokens"]

SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "gst_"
FORMAT = 1
_MAX_FILE = 16 << 20  # a token file this big was not written by gitstore


@dataclasses.dataclass(frozen=True)
class Token:
    """A token's public facts (never its secret): name, scope, spec pattern, creation time."""

    name: str
    scope: str
    spec: str | None
    created_at: str

    def allows(self, scope: str, spec: str | None = None) -> bool:
        """True if this token grants ``scope`` (and, when given, access to ``spec``)."""
        if SCOPES.index(self.scope) < SCOPES.index(scope):
            return False
        return spec is None or self.covers(spec)

    def covers(self, spec: str) -> bool:
        """True if the token's spec pattern (if any) matches ``spec``."""
        return self.spec is None or fnmatch.fnmatchcase(spec, self.spec)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``token ls --json``)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Entry:
    token: Token
    sha256: str


class Tokens:
    """The tokens of one store on disk (``store.path``); safe to share between threads."""

    def __init__(self, gitdir: str | os.PathLike[str] | None) -> None:
        if gitdir is None:
            raise UsageError("tokens need a store on disk (an in-memory store has no folder)")
        self.path = os.path.join(os.fspath(gitdir), "gitstore", "tokens.json")
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[_Entry] = []

    # -- reading -----------------------------------------------------------------------------

    def all(self) -> list[Token]:
        """Every token, by name."""
        return [e.token for e in self._current()]

    def __bool__(self) -> bool:
        """True if at least one token exists (the server then asks for one)."""
        return bool(self._current())

    def check(self, secret: str) -> Token | None:
        """The token whose secret is ``secret``, or None; in time independent of which."""
        digest = _digest(secret)
        found = None
        for entry in self._current():
            # No early exit: every entry is compared, whether or not one matched already.
            if hmac.compare_digest(digest, entry.sha256):
                found = entry.token
        return found

    def _current(self) -> list[_Entry]:
        """The entries as on disk now, re-read only when the file changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            with self._lock:
                self._seen, self._entries = None, []
            return []
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if key != self._seen:
                self._entries = self._read()
                self._seen = key
            return self._entries

    def _read(self) -> list[_Entry]:
        try:
            with open(self.path, "rb") as f:
                raw = f.read(_MAX_FILE + 1)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StoreError(f"{self.path}: {e.strerror}") from None
        if len(raw) > _MAX_FILE:
            raise StoreError(f"{self.path} is larger than {_MAX_FILE} bytes: not a token file")
        try:
            doc = json.loads(raw)
            entries = [
                _Entry(
                    Token(
                        name=str(t["name"]),
                        scope=_scope(t["scope"]),
                        spec=None if t.get("spec") is None else str(t["spec"]),
                        created_at=str(t["created_at"]),
                    ),
                    str(t["sha256"]),
                )
                for t in doc["tokens"]
            ]
        except (ValueError, KeyError, TypeError, UsageError) as e:
            raise StoreError(f"{self.path} is damaged ({e}); fix or remove it") from None
        return sorted(entries, key=lambda e: e.token.name)

    # -- writing -----------------------------------------------------------------------------

    def add(self, name: str, *, scope: str = "read", spec: str | None = None) -> tuple[Token, str]:
        """Make a token; return it and its secret (the only time the secret is available).

        Raises:
          InvalidNameError: a name that is not a valid spec-like name, or a bad spec pattern.
          UsageError: an unknown scope, or a token of that name exists already.
        """
        check_component(name, "token name")
        _scope(scope)
        if spec is not None:
            _check_pattern(spec)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token(name=name, scope=scope, spec=spec, created_at=now_iso())
        with self._locked():
            entries = self._read()
            if any(e.token.name == name for e in entries):
                raise UsageError(f"a token named {name!r} exists (remove it first)")
            self._write([*entries, _Entry(token, _digest(secret))])
        return token, secret

    def remove(self, name: str) -> Token:
        """Delete the token ``name`` (requests carrying it are refused from then on)."""
        with self._locked():
            entries = self._read()
            gone = [e for e in entries if e.token.name == name]
            if not gone:
                raise NotFoundError(f"no token named {name!r}")
            self._write([e for e in entries if e.token.name != name])
        return gone[0].token

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # The kernel drops an flock when its holder dies: a killed writer blocks nobody.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, entries: list[_Entry]) -> None:
        doc = {
            "format": FORMAT,
            "tokens": [
                {**e.token.to_dict(), "sha256": e.sha256}
                for e in sorted(entries, key=lambda e: e.token.name)
            ],
        }
        data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        folder = os.path.dirname(self.path)
        tmp = f"{self.path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            # 0600: the digests are not secrets, but nobody else needs to read who has access.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def _scope(value: object) -> str:
    if value not in SCOPES:
        raise UsageError(f"scope {value!r} is not one of {', '.join(SCOPES)}")
    assert isinstance(value, str)
    return value


def _check_pattern(pattern: str) -> None:
    """A spec pattern is a glob over one ref component: the characters of a name plus ``*?[]!``."""
    if not pattern or len(pattern) > 128:
        raise InvalidNameError(f"spec pattern {pattern!r} must be 1 to 128 characters")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*?[]!")
    bad = sorted(set(pattern) - allowed)
    if bad:
        raise InvalidNameError(f"spec pattern {pattern!r} may not contain {bad[0]!r}")
