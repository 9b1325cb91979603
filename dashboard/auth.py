"""Who may read: the holder of LEDGER_DASHBOARD_TOKEN, as a bearer token (API clients) or
as the session cookie the login page sets (browsers). Comparisons are constant-time; the
cookie holds a MAC of the token, never the token itself."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from ledger.settings import Settings

COOKIE = "stripe_ledger_session"
_SESSION_LABEL = b"stripe-ledger dashboard session v1"


def session_value(token: str) -> str:
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def token_matches(given: str, settings: Settings) -> bool:
    token = settings.dashboard_token
    if token is None:  # not configured: nobody gets in
        return False
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def authorized(request: Request, settings: Settings) -> bool:
    token = settings.dashboard_token
    if token is None:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        return token_matches(given.strip(), settings)
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and hmac.compare_digest(
        cookie.encode(), session_value(token.get_secret_value()).encode()
    )
