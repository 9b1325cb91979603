"""The two endpoints `bench.ingest` measures stripe-ledger against, as uvicorn factories.

- `bare_app`: reads the body and answers 200. The HTTP ceiling of uvicorn + Starlette here.
- `ledger_without_projections_app`: stripe-ledger's webhook app as `serve` builds it, minus
  the projection worker (and the reconciler): what the append path alone reaches while the
  worker still runs inside the HTTP workers (issue 16 moves it out).
- `naive_app`: what a careful user would write by hand: the signature verified with the
  `stripe` library, then one INSERT of the raw body and one commit per request through an
  asyncpg pool (a single statement outside a transaction block commits by itself). No
  dedupe, no ordering, no logging. Configured by NAIVE_DATABASE_URL (a postgresql:// URL)
  and STRIPE_WEBHOOK_SECRET; the table is `NAIVE_TABLE`, created by `create_naive_table`.

    uvicorn bench.ingest_baselines:bare_app --factory --workers 2 --port P
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ledger.logs import configure_logging
from ledger.settings import load_settings
from webhooks.app import create_app

NAIVE_TABLE = "bench_naive_events"
_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} ("
    "id bigserial PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now(), "
    "payload text NOT NULL)"
)
_INSERT = f"INSERT INTO {NAIVE_TABLE} (payload) VALUES ($1)"
# Per worker process; bench.ingest opens 64 connections over 2 workers, 32 each.
_POOL_SIZE = 32
_TOLERANCE_SECONDS = 300


async def create_naive_table(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(_CREATE)
    finally:
        await conn.close()


async def _healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def bare_app() -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"received": True})

    return Starlette(
        routes=[
            Route("/webhooks/stripe", receive, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ]
    )


def ledger_without_projections_app() -> Starlette:
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, migrate=True)


def naive_app() -> Starlette:
    url = os.environ["NAIVE_DATABASE_URL"]
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(url, min_size=4, max_size=_POOL_SIZE)
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            payload = body.decode("utf-8")
            stripe.WebhookSignature.verify_header(
                payload, request.headers.get("stripe-signature"), secret, _TOLERANCE_SECONDS
            )
        except (UnicodeDecodeError, stripe.SignatureVerificationError):
            return JSONResponse({"error": "bad signature"}, status_code=400)
        await pools[0].execute(_INSERT, payload)
        return JSONResponse({"received": True})

    return Starlette(
        routes=[
            Route("/webhooks/stripe", receive, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
