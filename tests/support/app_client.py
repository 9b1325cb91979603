"""An httpx client talking to the real ASGI app in-process, with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx

from ledger.settings import Settings
from webhooks.app import Companion, create_app


@asynccontextmanager
async def app_client(
    settings: Settings, companions: Sequence[Companion] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, companions=companions)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            yield client
