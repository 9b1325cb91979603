"""Signing in and out of the dashboard: `POST /login` checks the token (rate-limited per
address) and opens a session; `POST /logout` ends it for every serving process.

The form is read with a limit enforced while it streams in: an unauthenticated client
cannot make the server hold more than FORM_LIMIT bytes of it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dashboard import sessions
from dashboard.auth import COOKIE, Refused, check_token, current_session, throttled
from dashboard.page import login_page, refused_page
from ledger.errors import LedgerUnavailable
from webhooks.body import BadContentLength, BodyAbandoned, BodyTooLarge, read_limited

# A form with one field, the token: a few hundred bytes at most.
FORM_LIMIT: Final = 4096


async def _form_token(request: Request) -> str | Refused:
    try:
        body = await read_limited(request, FORM_LIMIT)
    except BodyTooLarge:
        return Refused(413, f"the sign-in form is larger than {FORM_LIMIT} bytes")
    except (BadContentLength, BodyAbandoned) as exc:
        return Refused(400, str(exc))
    # A one-field urlencoded form: parsed here rather than with a multipart library.
    return parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]


async def login(request: Request) -> Response:
    if request.method == "GET":
        return HTMLResponse(login_page())
    # An address that has guessed too often is refused before anything it sends is read.
    given = throttled(request) or await _form_token(request)
    refused = given if isinstance(given, Refused) else check_token(request, given)
    if refused is not None:
        return HTMLResponse(login_page(refused.reason), refused.status, refused.headers())
    settings = request.app.state.runtime.settings
    assert settings.dashboard_token is not None  # check_token refuses when unset
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        sessions.issue(settings.dashboard_token.get_secret_value(), sessions.now_utc()),
        max_age=sessions.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    try:
        session = await current_session(request)
        if session is not None:
            await sessions.end(request.app.state.runtime.engine, session, sessions.now_utc())
    except LedgerUnavailable:
        # The session still works; saying so beats a sign-out that silently did nothing.
        return refused_page(Refused(503, "not signed out: the database is unavailable, retry"))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        COOKIE, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
