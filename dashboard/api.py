"""`/api/v1`: the figures as JSON, read-only. The metrics document is the one
`stripe-ledger metrics --json` prints; movements and customers carry their Stripe event ids.

Bad parameters answer 400 with a one-line reason, a missing exchange rate 422, an unknown
customer 404, and no credentials 401: never a 5xx for anything the caller sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dashboard.auth import Refused, refusal
from dashboard.openapi import OPENAPI
from dashboard.params import BadParameter, account_of
from projections.explanations import explanation_document
from projections.fx import MissingRate
from projections.money import major_units
from projections.periods import PeriodError, parse_instant, requested_ranges
from projections.queries import customer_story, movements_between
from projections.reports import metric_documents
from projections.runner import ProjectionRunner

MOVEMENT_KINDS = ("new", "expansion", "reactivation", "contraction", "churn")


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def _refused(refused: Refused) -> JSONResponse:
    headers = refused.headers()
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="stripe-ledger"'
    return JSONResponse({"error": refused.reason}, refused.status, headers)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadParameter(f"{name} must be true or false")
    return value in ("true", "1")


def _account(request: Request) -> str:
    return account_of(request.query_params)


def _ranges(request: Request, *, by_month: bool = False) -> list[tuple[datetime, datetime]]:
    q = request.query_params
    return requested_ranges(q.get("period"), q.get("from"), q.get("to"), by_month, _now())


def _now() -> datetime:
    return datetime.now(UTC)


async def _answer(request: Request, work: Any) -> Response:
    if refused := await refusal(request):
        return _refused(refused)
    try:
        return JSONResponse(await work())
    except (BadParameter, PeriodError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except MissingRate as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)


async def metrics(request: Request) -> Response:
    runtime = _runtime(request)

    async def work() -> Any:
        q = request.query_params
        instant = parse_instant(q["as_of"]) if "as_of" in q else None
        by_month = _flag(request, "by_month")
        ranges = [] if instant is not None else _ranges(request, by_month=by_month)
        frozen = parse_instant(q["frozen_at"]) if "frozen_at" in q else None
        documents = await metric_documents(
            runtime.engine,
            runtime.settings,
            _account(request),
            ranges=ranges,
            instant=instant,
            reported=_flag(request, "as_reported"),
            frozen_at=frozen,
        )
        return documents if by_month else documents[0]

    return await _answer(request, work)


async def movements(request: Request) -> Response:
    runtime = _runtime(request)

    async def work() -> Any:
        account = _account(request)
        [(start, end)] = _ranges(request)
        kinds = [k for k in request.query_params.get("kind", "").split(",") if k]
        if unknown := set(kinds) - set(MOVEMENT_KINDS):
            raise BadParameter(f"unknown kind {sorted(unknown)[0]!r}: one of {MOVEMENT_KINDS}")
        customer = request.query_params.get("customer")
        await ProjectionRunner(
            runtime.engine, reporting_currency=runtime.settings.reporting_currency
        ).catch_up(account)
        async with runtime.engine.connect() as conn:
            rows = await movements_between(conn, account, start, end)
        return {
            "account": account,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "movements": [
                {
                    "customer_id": m.customer_id,
                    "effective_at": m.effective_at.isoformat(),
                    "kind": m.kind,
                    "subtype": m.subtype,
                    "amount": major_units(m.amount, m.currency),
                    "currency": m.currency,
                    "event_ids": list(m.event_ids),
                }
                for m in rows
                if (not kinds or m.kind in kinds)
                and (customer is None or m.customer_id == customer)
            ],
        }

    return await _answer(request, work)


async def customer(request: Request) -> Response:
    runtime = _runtime(request)
    customer_id = request.path_params["customer_id"]

    async def work() -> Any:
        account = _account(request)
        await ProjectionRunner(
            runtime.engine, reporting_currency=runtime.settings.reporting_currency
        ).catch_up(account)
        async with runtime.engine.connect() as conn:
            intervals, moves, states = await customer_story(conn, account, customer_id)
        if not (intervals or moves or states):
            return None
        return {"customer_id": customer_id, "account": account} | explanation_document(
            intervals, moves, states
        )

    response = await _answer(request, work)
    if response.status_code == 200 and response.body == b"null":
        return JSONResponse({"error": f"no customer {customer_id!r} in the read models"}, 404)
    return response


async def openapi(request: Request) -> Response:
    if refused := await refusal(request):
        return _refused(refused)
    return JSONResponse(OPENAPI)
