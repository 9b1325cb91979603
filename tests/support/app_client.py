"""An httpx client talking to the real ASGI app in-process, with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from ledger.settings import Settings
from webhooks.app import Companion, create_app


@asynccontextmanager
async def app_client(
    settings: Settings,
    companions: Sequence[Companion] = (),
    *,
    addresses: Sequence[str] = ("127.0.0.1",),
    base_url: str = "http://ledger.test",
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app; with several `addresses`, use clients_from instead."""
    async with clients_from(settings, companions, addresses=addresses, base_url=base_url) as found:
        yield found[0]


@asynccontextmanager
async def clients_from(
    settings: Settings,
    companions: Sequence[Companion] = (),
    *,
    addresses: Sequence[str] = ("127.0.0.1",),
    base_url: str = "http://ledger.test",
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Clients of one app, each connecting from its own address (as the app sees it)."""
    app = create_app(settings, companions=companions)
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        clients = []
        for address in addresses:
            transport = httpx.ASGITransport(app=app, client=(address, 50000))
            client = httpx.AsyncClient(transport=transport, base_url=base_url)
            clients.append(await stack.enter_async_context(client))
        yield clients
