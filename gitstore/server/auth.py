"""Who may do what: the token a request carries, checked against the scope and spec it needs.

A request carries a token as ``Authorization: Bearer TOKEN``, or as the password of HTTP basic
auth with any user name (what Git clients send). The rules, in order:

1. A request that carries a token is judged by it, always: unknown is 401, a scope or spec
   pattern that does not cover the request is 403.
2. Without a token: when the store has no token at all and the server listens on loopback only
   (``open_without_tokens``), everything is allowed, as for anyone who can open the store's
   files; with ``--public-read``, reads are allowed; anything else is 401.

The token file is re-read when it changes, so adding the first token switches a loopback server
from open to token-only without a restart.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Mapping

from gitstore import Token, Tokens
from gitstore.server.errors import AuthRequiredError, ForbiddenError

__all__ = ["CHALLENGES", "Access"]

# Sent with every 401: Bearer for API clients, Basic so that Git and browsers ask for a password.
CHALLENGES = ('Bearer realm="gitstore"', 'Basic realm="gitstore"')


@dataclasses.dataclass(frozen=True)
class Access:
    """The server's access rules: its store's tokens and how it was started."""

    tokens: Tokens | None  # None: a store with no folder, so no tokens
    public_read: bool = False
    open_without_tokens: bool = False

    def authorize(
        self, headers: Mapping[str, str], scope: str, specs: Iterable[str] = ()
    ) -> Token | None:
        """The token that allows ``scope`` on ``specs``, or None when no token is needed.

        Raises:
          AuthRequiredError: no token where one is needed, an unknown token, a bad header.
          ForbiddenError: a known token whose scope or spec pattern does not cover the request.
        """
        secret = credentials(headers.get("authorization"))
        if secret is not None:
            token = self.tokens.check(secret) if self.tokens is not None else None
            if token is None:
                raise AuthRequiredError("the token is not known to this store")
            if not token.allows(scope):
                raise ForbiddenError(
                    f"token {token.name!r} has scope {token.scope}; this needs {scope}"
                )
            for spec in specs:
                if not token.covers(spec):
                    raise ForbiddenError(
                        f"token {token.name!r} is limited to specs {token.spec!r}, not {spec!r}"
                    )
            return token
        if self.open_without_tokens and not (self.tokens is not None and self.tokens):
            return None
        if scope == "read" and self.public_read:
            return None
        raise AuthRequiredError(
            f"this needs a token with scope {scope} (Authorization: Bearer TOKEN)"
        )


def credentials(header: str | None) -> str | None:
    """The token in an Authorization header (Bearer, or Basic's password); None if no header."""
    if header is None:
        return None
    kind, _, value = header.strip().partition(" ")
    value = value.strip()
    if kind.lower() == "bearer" and value:
        return value
    if kind.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthRequiredError(
                "the Basic credentials are not base64 of user:password"
            ) from None
        _, colon, password = decoded.partition(":")
        if colon and password:
            return password
    raise AuthRequiredError("the Authorization header is not 'Bearer TOKEN' (nor Basic)")
