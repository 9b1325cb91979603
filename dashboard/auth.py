"""Who may read: the holder of LEDGER_DASHBOARD_TOKEN, as a bearer token (API clients) or
through a session the login form opened (browsers, dashboard.sessions). Token comparisons
are constant-time, and wrong tokens are rate-limited per client address (dashboard.throttle).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request

from dashboard import sessions
from dashboard.throttle import FailedAttempts
from ledger.errors import LedgerUnavailable
from ledger.settings import Settings

COOKIE = "stripe_ledger_session"
CREDENTIALS_REQUIRED = "credentials required: Authorization: Bearer <LEDGER_DASHBOARD_TOKEN>"


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a request may not read: 401 (no or wrong credentials), 429 (too many wrong
    tokens from its address) or 503 (the sessions cannot be read)."""

    status: int
    reason: str
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def failed_attempts(app: Starlette) -> FailedAttempts:
    """This app's count of wrong tokens (one per app, so each test's app starts afresh)."""
    found = getattr(app.state, "dashboard_failed_attempts", None)
    if not isinstance(found, FailedAttempts):
        found = FailedAttempts()
        app.state.dashboard_failed_attempts = found
    return found


def client_address(request: Request) -> str:
    # Behind a proxy this is the proxy's address unless uvicorn trusts its forwarded headers
    # (FORWARDED_ALLOW_IPS): then every client of the proxy shares one count.
    return request.client.host if request.client else "unknown"


def throttled(request: Request) -> Refused | None:
    """A 429 when the request's address has sent too many wrong tokens lately."""
    wait = failed_attempts(request.app).retry_after(client_address(request))
    if wait is None:
        return None
    return Refused(429, f"too many wrong tokens from this address: retry in {wait} s", wait)


def check_token(request: Request, given: str) -> Refused | None:
    """A token a client typed or sent: None when it is the dashboard token."""
    if refused := throttled(request):
        return refused
    token = _settings(request).dashboard_token
    if token is None:  # not configured: nobody gets in
        return Refused(401, CREDENTIALS_REQUIRED)
    if hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return None
    failed_attempts(request.app).failed(client_address(request))
    return Refused(401, "that is not the dashboard token")


async def current_session(request: Request) -> sessions.Session | None:
    """The genuine, unexpired, not ended session the request's cookie names, if any."""
    token, cookie = _settings(request).dashboard_token, request.cookies.get(COOKIE)
    if token is None or cookie is None:
        return None
    # A cookie cannot be guessed (a 256-bit MAC), so a wrong one is not a failed attempt:
    # it is most often one a changed token made stale.
    session = sessions.read(cookie, token.get_secret_value(), sessions.now_utc())
    if session is None or await sessions.has_ended(request.app.state.runtime.engine, session):
        return None
    return session


async def refusal(request: Request) -> Refused | None:
    """Why this request may not read, or None when it may."""
    if _settings(request).dashboard_token is None:
        return Refused(401, CREDENTIALS_REQUIRED)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return check_token(request, given.strip())
    try:
        session = await current_session(request)
    except LedgerUnavailable:
        return Refused(503, "the dashboard's sessions cannot be read: database unavailable")
    return None if session is not None else Refused(401, CREDENTIALS_REQUIRED)
