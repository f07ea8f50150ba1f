"""Who is looking at the web page: the API's token rules, carried by a browser session.

A person signs in by pasting a token into the login form once. The server answers with a
session cookie that holds NOT the token but a signed session: the token's name and creation time
and an expiry, with an HMAC-SHA256 under a key made when the server starts. So:

* the token never sits in the browser's cookie jar; a stolen cookie reads the web page of one
  server process for at most :data:`SESSION_SECONDS`, and nothing else (the API and Git routes
  read ``Authorization`` only, never cookies, and the cookie's ``Path`` is the web page's);
* every request looks the token up again by name and creation time, so ``gitstore token rm``
  ends its sessions at once, and a token re-made under the same name does not inherit them;
* restarting the server ends every session (a new key): people sign in again.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (never sent with a request
another site starts, so no other site can use the session) and ``Secure`` when the page is
served over HTTPS. SameSite=Strict also means a link to the page clicked in a chat arrives
without the cookie; such a navigation (``Sec-Fetch-Site: cross-site``) is answered with a page
that reloads the same URL from this site, which then carries the cookie (:func:`bounce_needed`).

A request may also carry ``Authorization: Bearer TOKEN`` as the API's do (scripts, a proxy), and
the page needs no sign-in at all where the API lets reads through without a token (a loopback
server with no tokens, or ``--public-read``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping

from gitstore import Token
from gitstore.server.auth import Access
from gitstore.server.errors import AuthRequiredError

__all__ = ["COOKIE", "SESSION_SECONDS", "LoginRequired", "Sessions", "Viewer", "bounce_needed"]

COOKIE = "gitstore_session"
SESSION_SECONDS = 12 * 3600


class LoginRequired(Exception):
    """The request carries no usable session and the page needs one: show the login form."""


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Who the page is for: their token (None where reads need none) and how it arrived."""

    token: Token | None
    via: str  # "session" | "header" | "open"

    @property
    def signed_in(self) -> bool:
        """True when a session cookie carries the token (the page offers to sign out)."""
        return self.via == "session"

    def sees(self, spec: str) -> bool:
        """True if the viewer may read ``spec``."""
        return self.token is None or self.token.covers(spec)


class Sessions:
    """Issues and checks session cookies for one server process."""

    def __init__(self, access: Access, key: bytes | None = None) -> None:
        self.access = access
        self._key = key or os.urandom(32)

    @property
    def needs_login(self) -> bool:
        """True when reads need a token (the page shows the login form to strangers)."""
        try:
            self.access.authorize({}, "read")
        except AuthRequiredError:
            return True
        return False

    def login(self, secret: str) -> Token | None:
        """The token whose secret is ``secret`` (None if unknown)."""
        tokens = self.access.tokens
        return tokens.check(secret.strip()) if tokens is not None and secret.strip() else None

    def issue(self, token: Token, now: float | None = None) -> str:
        """A cookie value for ``token``, valid for :data:`SESSION_SECONDS`."""
        expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
        body = json.dumps([token.name, token.created_at, expires], separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def check(self, value: str, now: float | None = None) -> Token | None:
        """The live token a cookie value names, or None (forged, expired, token removed)."""
        payload, dot, mac = value.partition(".")
        if not dot or not hmac.compare_digest(mac, self._sign(payload)):
            return None
        try:
            body = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            name, created_at, expires = json.loads(body)
        except ValueError:
            return None
        if not isinstance(expires, int) or expires < (now if now is not None else time.time()):
            return None
        tokens = self.access.tokens
        if tokens is None:
            return None
        for token in tokens.all():
            if token.name == name and token.created_at == created_at:
                return token
        return None

    def viewer(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Viewer:
        """Who sent a request.

        Raises:
          AuthRequiredError, ForbiddenError: an ``Authorization`` header that the API refuses.
          LoginRequired: nothing that lets the request read.
        """
        if "authorization" in headers:
            return Viewer(self.access.authorize(headers, "read"), "header")
        cookie = cookies.get(COOKIE)
        if cookie:
            token = self.check(cookie)
            if token is not None:
                return Viewer(token, "session")
        if not self.needs_login:
            return Viewer(None, "open")
        raise LoginRequired()

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()


def bounce_needed(headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
    """True for a navigation another site started, which a SameSite=Strict cookie skips."""
    return headers.get("sec-fetch-site") == "cross-site" and COOKIE not in cookies
