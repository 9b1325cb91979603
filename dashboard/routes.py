"""Where the read side is mounted."""

from __future__ import annotations

from starlette.routing import Route

from dashboard import api, page


def read_routes() -> list[Route]:
    """The read API and the dashboard, to mount beside the webhook endpoint."""
    return [
        Route("/", page.dashboard, methods=["GET"]),
        Route("/login", page.login, methods=["GET", "POST"]),
        Route("/logout", page.logout, methods=["POST"]),
        Route("/dashboard.csv", page.download, methods=["GET"]),
        Route("/api/v1/metrics", api.metrics, methods=["GET"]),
        Route("/api/v1/movements", api.movements, methods=["GET"]),
        Route("/api/v1/customers/{customer_id}", api.customer, methods=["GET"]),
        Route("/api/v1/openapi.json", api.openapi, methods=["GET"]),
    ]
