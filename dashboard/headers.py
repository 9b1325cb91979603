"""The headers every read-side answer carries: nothing cached (figures are confidential, and
a shared or back-button cache would show them after sign-out), no framing, and a Content
Security Policy allowing only what the server-rendered pages use: no script at all, inline
styles (the page's stylesheet and the charts' legend colours) and same-origin forms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[Request], Awaitable[Response]]


def secured(handler: Handler) -> Handler:
    @wraps(handler)
    async def answer(request: Request) -> Response:
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return answer
