"""The served process: the webhook app with the projection worker beside it."""

from __future__ import annotations

from functools import partial

from starlette.types import ASGIApp

from cli.reconcile import EVERY, reconciler
from cli.shutdown import ShutdownDeadline, stop_with_supervisor
from ledger.logs import configure_logging
from ledger.settings import load_settings
from projections.worker import projection_worker
from webhooks.app import Companion, create_app


def create_served_app() -> ASGIApp:
    """The uvicorn factory used by `stripe-ledger serve` (one call per worker process)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    stop_with_supervisor()
    worker = partial(projection_worker, reporting_currency=settings.reporting_currency)
    companions: list[Companion] = [worker]
    if settings.reconcile != "off":
        companions.append(reconciler(settings, EVERY[settings.reconcile]))
    # migrate: a server started while the database was unusable applies them once it is back.
    app = create_app(settings, companions=companions, migrate=True)
    # Requests in flight get the grace (uvicorn's timeout_graceful_shutdown), then the
    # shutdown itself as long again: committing what is queued, stopping the worker.
    return ShutdownDeadline(app, settings.shutdown_grace_seconds)
