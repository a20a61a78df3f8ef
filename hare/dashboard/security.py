"""Who may look and who may act: the bind rule, the token, the cookies. No web framework here.

The model (docs/dashboard.md):

* the server binds 127.0.0.1 by default. Any other address (`--host 0.0.0.0`, a LAN address)
  needs a token (`--token`, or `HARE_DASHBOARD_TOKEN`); without one it refuses to start;
* there is always a token: given, or generated at start and printed once (on loopback only);
* viewing needs the token only when bound beyond loopback; every action (replay, purge) needs
  it always, even on 127.0.0.1, because any local process or user can reach loopback;
* the token is given once on `/login` (or as `Authorization: Bearer`): the browser then holds
  `auth_cookie(token)`, an HMAC of it, never the token itself;
* every POST carries a per-session CSRF value in a form field that must equal its cookie
  (double submit; both cookies are HttpOnly and SameSite=Strict);
* on loopback, only a loopback `Host` header is served, so a page of another site cannot reach
  the dashboard through DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from hare.errors import ConfigurationError

__all__ = (
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "LOOPBACK_HOSTS",
    "auth_cookie",
    "check_bind",
    "is_loopback",
    "new_secret",
    "same",
)

AUTH_COOKIE = "hare_dashboard_auth"
CSRF_COOKIE = "hare_dashboard_csrf"
#: The `Host` names a loopback-bound dashboard answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (`ConfigurationError`, saying why)."""
    if not is_loopback(host) and not token:
        raise ConfigurationError(
            f"--host {host} serves the dashboard beyond this machine: give --token TOKEN "
            "(or set HARE_DASHBOARD_TOKEN); anyone who reaches it could replay and purge "
            "dead letters"
        )
    if token is not None and len(token) < 16:
        raise ConfigurationError("the dashboard token must be at least 16 characters long")


def new_secret() -> str:
    """A random token (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(24)


def auth_cookie(token: str) -> str:
    """What the browser keeps once it gave the token: an HMAC of it, not the token."""
    return hmac.new(token.encode(), b"hare-dashboard-auth", hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    """`given == expected` in constant time; False for None."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
