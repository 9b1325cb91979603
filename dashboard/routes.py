"""Where the read side is mounted."""

from __future__ import annotations

from starlette.routing import Route

from dashboard import api, login, page
from dashboard.headers import secured


def read_routes() -> list[Route]:
    """The read API and the dashboard, to mount beside the webhook endpoint; every answer
    carries the security headers (dashboard.headers)."""
    return [
        Route("/", secured(page.dashboard), methods=["GET"]),
        Route("/login", secured(login.login), methods=["GET", "POST"]),
        Route("/logout", secured(login.logout), methods=["POST"]),
        Route("/dashboard.csv", secured(page.download), methods=["GET"]),
        Route("/api/v1/metrics", secured(api.metrics), methods=["GET"]),
        Route("/api/v1/movements", secured(api.movements), methods=["GET"]),
        Route("/api/v1/customers/{customer_id}", secured(api.customer), methods=["GET"]),
        Route("/api/v1/openapi.json", secured(api.openapi), methods=["GET"]),
    ]
