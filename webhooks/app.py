"""The ASGI app: `POST /webhooks/stripe[/{account}]`, `GET /healthz`, `GET /readyz`.

A delivery is verified over its raw bytes, parsed only for routing, appended through the
group committer, and answered 2xx only once its commit is done. Nothing derived is
computed on this path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dashboard.routes import read_routes
from ledger.account_mode import PinnedModes
from ledger.accounts import Account, accounts_from_settings, all_accounts
from ledger.engine import engine_from_settings
from ledger.envelope import Source, parse_event
from ledger.errors import LedgerUnavailable, MalformedEvent
from ledger.event_log import EventLog, Outcome
from ledger.group_commit import GroupCommitter
from ledger.logs import get_logger
from ledger.readiness import unready_reason
from ledger.settings import DEFAULT_ACCOUNT, Settings, load_settings
from projections.quarantine import readiness_warnings
from webhooks.accounts_cache import AccountCache, enabled_names
from webhooks.body import BadContentLength, BodyAbandoned, BodyTooLarge, read_limited
from webhooks.ledger_gate import LedgerGate, opened
from webhooks.verify import BadSignature, verify_signature

log = get_logger("webhooks")


@dataclass
class Runtime:
    """What the handlers need, built in the lifespan (engines belong to one event loop)."""

    settings: Settings
    accounts: dict[str, Account]
    engine: AsyncEngine
    log: EventLog
    committer: GroupCommitter
    # Shared with the companions (the projection worker reads it on every round).
    account_names: list[str]
    _cache: AccountCache = field(init=False, repr=False)
    modes: PinnedModes = field(default_factory=PinnedModes, repr=False)

    def __post_init__(self) -> None:
        self._cache = AccountCache(self.engine, self.settings, self.accounts, self.account_names)

    async def account(self, name: str) -> Account | None:
        """The account as stored a couple of seconds ago at most (see AccountCache)."""
        return await self._cache.get(name)


def _refuse(status: int, reason: str, **fields: object) -> JSONResponse:
    log.warning("webhook_refused", status=status, reason=reason, **fields)
    return JSONResponse({"error": reason}, status_code=status)


async def receive_event(request: Request) -> JSONResponse:
    started = time.perf_counter()
    runtime: Runtime = request.app.state.runtime
    account_name = request.path_params.get("account", DEFAULT_ACCOUNT)
    try:
        account = await runtime.account(account_name)
    except LedgerUnavailable:
        return JSONResponse({"error": "ledger unavailable, retry later"}, status_code=503)
    if account is None:
        return _refuse(404, f"unknown account {account_name!r}", account=account_name[:64])
    if not account.enabled:
        return _refuse(403, f"account {account_name!r} is disabled", account=account_name)
    if account.unreadable:  # logged once by the account cache; Stripe retries a 503
        return JSONResponse({"error": "account secrets unreadable, retry later"}, status_code=503)
    settings = runtime.settings
    try:
        body = await read_limited(request, settings.max_body_bytes)
    except BodyTooLarge as exc:
        return _refuse(413, str(exc), account=account.name)
    except BadContentLength as exc:
        return _refuse(400, str(exc), account=account.name)
    except BodyAbandoned as exc:
        # The answer goes nowhere; it is returned only so the app ends the request cleanly.
        log.info("webhook_abandoned", received_bytes=exc.received, account=account.name)
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        verify_signature(
            body,
            request.headers.get("stripe-signature"),
            account.webhook_secrets,
            settings.webhook_tolerance_seconds,
        )
        event = parse_event(body, account=account.name, source=Source.WEBHOOK)
    except (BadSignature, MalformedEvent) as exc:
        return _refuse(400, str(exc), account=account.name)
    context = {"account": account.name, "event_id": event.event_id, "type": event.type}
    if not account.accepts_livemode(event.livemode):
        mode = "live" if event.livemode else "test"
        return _refuse(400, f"a {mode}-mode event sent to a {account.mode}-mode account", **context)
    try:  # one account's figures never mix modes (ledger.account_mode)
        other_mode = await asyncio.wait_for(
            runtime.modes.refusal(runtime.engine, account.name, event.livemode),
            settings.commit_timeout_seconds,
        )
    except (LedgerUnavailable, TimeoutError):
        return JSONResponse({"error": "ledger unavailable, retry later"}, status_code=503)
    if other_mode is not None:
        return _refuse(400, other_mode, **context)
    try:
        result = await asyncio.wait_for(
            runtime.committer.append(event), settings.commit_timeout_seconds
        )
    except (LedgerUnavailable, TimeoutError) as exc:
        reason = "ledger unavailable, retry later"
        log.error("webhook_not_stored", status=503, error=type(exc).__name__, **context)
        return JSONResponse({"error": reason}, status_code=503)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    level = log.warning if result.outcome is Outcome.CONFLICT else log.info
    level(
        "webhook_stored",
        outcome=result.outcome.value,
        position=result.position,
        latency_ms=latency_ms,
        **context,
    )
    return JSONResponse({"received": True, "outcome": result.outcome.value})


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when an append could commit now: the ledger open (ledger_gate) and the
    database taking writes (ledger.readiness), not merely answering a SELECT."""
    runtime: Runtime = request.app.state.runtime
    gate: LedgerGate = request.app.state.ledger_gate
    reason = gate.reason or await unready_reason(runtime.engine)
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    # Quarantined customers are a warning, not unreadiness (projections/quarantine.py).
    return JSONResponse({"status": "ready", **await readiness_warnings(runtime.engine)})


# Work that runs beside the endpoint in the same process (the projection worker): entered
# with the engine and the account names at start-up, left at shutdown. It yields a wake-up
# call that the app makes after every commit; the call must return at once.
Companion = Callable[[AsyncEngine, Sequence[str]], AbstractAsyncContextManager[Callable[[], None]]]


def create_app(
    settings: Settings | None = None,
    *,
    companions: Sequence[Companion] = (),
    migrate: bool = False,
) -> Starlette:
    """The app; settings come from the environment unless given (tests give them).
    `migrate`: apply pending migrations itself, at start-up or once the database is back
    (`serve`); otherwise it waits for `stripe-ledger db upgrade`."""
    settings = settings or load_settings()
    accounts_from_settings(settings)  # refuse to start with an unusable secret or key

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = engine_from_settings(settings)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            try:
                known = await all_accounts(engine, settings)
            except LedgerUnavailable:  # serve anyway: deliveries get 503 until it is back
                known = accounts_from_settings(settings)
            names = enabled_names(known)
            wakers = [
                await stack.enter_async_context(companion(engine, names))
                for companion in companions
            ]

            def committed() -> None:
                for wake in wakers:
                    wake()

            event_log = EventLog(engine)
            committer = GroupCommitter(event_log, max_batch=settings.max_batch, on_commit=committed)
            stack.push_async_callback(committer.stop)
            # Started once the database can be used (now, or when it is back): meanwhile
            # deliveries are answered 503 and /readyz says why.
            gate = LedgerGate(engine, committer, migrate=migrate)
            app.state.ledger_gate = await stack.enter_async_context(opened(gate))
            app.state.runtime = Runtime(settings, known, engine, event_log, committer, names)
            yield

    routes = [
        *read_routes(),
        Route("/webhooks/stripe", receive_event, methods=["POST"]),
        Route("/webhooks/stripe/{account}", receive_event, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
