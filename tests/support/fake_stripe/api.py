"""Stripe's read API over a Dataset, as one function of a request: authentication, rate limit,
injected 500s, routing, list parameters, and errors shaped as Stripe shapes them
(https://docs.stripe.com/api/errors). Independent of the HTTP server, so it is easy to test.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, NamedTuple

import orjson

from tests.support.fake_stripe.dataset import RESOURCES, CursorMissing, Dataset, Json, Page
from tests.support.fake_stripe.errors import Reply, StripeError, invalid
from tests.support.fake_stripe.params import (
    EXTRA_PARAMS,
    FILTERS,
    Query,
    event_filter,
    list_limit,
    simple_filters,
    subscription_statuses,
)

NOUN: Final = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "charges": "charge",
    "refunds": "refund",
    "balance_transactions": "balance transaction",
    "invoice_payments": "invoice payment",
    "events": "event",
    "lines": "invoice line item",
}
_KEY: Final = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9_]+")


class LoggedRequest(NamedTuple):
    """One request the fake answered. `query` keeps the last value of a repeated key."""

    method: str
    path: str
    query: dict[str, str]
    status: int


def _missing(status: int, noun: str, object_id: str, param: str) -> StripeError:
    return StripeError(
        status,
        "invalid_request_error",
        f"No such {noun}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


class FakeApi:
    """Answers requests from `dataset`. `rate_limit_per_second` (None: unlimited) and
    `error_rate` may be changed while serving; the 500s follow a `seed`ed sequence, one draw
    per admitted request in arrival order."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        rate_limit_per_second: float | None = None,
        error_rate: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dataset = dataset
        self.rate_limit_per_second = rate_limit_per_second
        self.error_rate = error_rate
        self._seed = seed
        self._rng = random.Random(seed)
        self._clock = clock
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()
        self._log: list[LoggedRequest] = []
        self._count = 0
        # Restricted keys and the resources they may not read (answered 403 as Stripe does).
        self.denied: dict[str, set[str]] = {}
        # What `GET /v1/webhook_endpoints` lists.
        self.webhook_endpoints: list[Json] = []

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def handle(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        *,
        authorization: str | None,
    ) -> Reply:
        items = list(query)
        with self._lock:
            self._count += 1
            digest = hashlib.sha256(f"{self._seed}|{self._count}".encode()).hexdigest()
        try:
            _authenticate(authorization)
            self._check_permission(authorization, path)
            self._admit()
            self._maybe_fail()
            if method != "GET":
                raise _unrecognized(method, path, "the fake is read-only")
            reply = Reply(200, self._route(path, Query(items)))
        except StripeError as error:
            reply = error.reply()
        reply.headers["Request-Id"] = f"req_{digest[:14]}"
        # The version the data is rendered in, whatever the client asked for: the fake cannot
        # re-render objects the way Stripe does for a request's `Stripe-Version`.
        if self.dataset.api_version:
            reply.headers["Stripe-Version"] = self.dataset.api_version
        with self._lock:
            self._log.append(LoggedRequest(method, path, dict(items), reply.status))
        return reply

    def _check_permission(self, authorization: str | None, path: str) -> None:
        key = (authorization or "").removeprefix("Bearer ").strip()
        parts = path.strip("/").split("/")
        resource = parts[1] if len(parts) > 1 else ""
        if resource in self.denied.get(key, set()):
            permission = f"rak_{resource.rstrip('s')}_read"
            raise StripeError(
                403,
                "invalid_request_error",
                f"The provided key '{key[:8]}***{key[-4:]}' does not have the required "
                f"permissions for this endpoint on account 'acct_fake'. Having the "
                f"'{permission}' permission would allow this request to continue.",
            )

    # faults ----------------------------------------------------------------------------

    def _admit(self) -> None:
        """A sliding one-second window over admitted requests; see
        https://docs.stripe.com/rate-limits (25/s in test mode, 100/s live)."""
        with self._lock:
            limit = self.rate_limit_per_second
            if limit is None:
                return
            now = self._clock()
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            if len(self._admitted) >= limit:
                wait = max(1, math.ceil(self._admitted[0] + 1.0 - now))
                raise StripeError(
                    429,
                    "rate_limit_error",
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                    headers={"Retry-After": str(wait), "Stripe-Rate-Limited-Reason": "global-rate"},
                )
            self._admitted.append(now)

    def _maybe_fail(self) -> None:
        with self._lock:
            fail = self.error_rate > 0 and self._rng.random() < self.error_rate
        if fail:
            raise StripeError(
                500,
                "api_error",
                "Sorry, something went wrong. We've already been notified of the problem.",
            )

    # routing ---------------------------------------------------------------------------

    def _route(self, path: str, query: Query) -> bytes:
        parts = path.strip("/").split("/")
        if parts == ["v1", "webhook_endpoints"]:
            listed = {"object": "list", "url": "/v1/webhook_endpoints", "has_more": False}
            return orjson.dumps({**listed, "data": self.webhook_endpoints})
        if len(parts) < 2 or parts[0] != "v1" or parts[1] not in RESOURCES:
            raise _unrecognized("GET", path)
        resource = parts[1]
        if len(parts) == 2:
            return orjson.dumps(self._list(resource, query))
        if len(parts) == 3:
            return orjson.dumps(self._retrieve(resource, parts[2], query))
        if len(parts) == 4 and resource == "invoices" and parts[3] == "lines":
            return orjson.dumps(self._lines(parts[2], query))
        raise _unrecognized("GET", path)

    def _list(self, resource: str, query: Query) -> Json:
        query.check(
            {
                "limit",
                "starting_after",
                "ending_before",
                "expand",
                "created",
                *FILTERS[resource],
                *EXTRA_PARAMS.get(resource, ()),
            }
        )
        limit, after, before = _paging(query)
        created = query.created()
        tests = simple_filters(resource, query)
        statuses = subscription_statuses(query) if resource == "subscriptions" else None
        events = event_filter(query) if resource == "events" else None

        def match(obj: Json) -> bool:
            if created is not None and not created(obj["created"]):
                return False
            if statuses is not None and obj.get("status") not in statuses:
                return False
            if events is not None and not events(obj):
                return False
            return all(test(obj, value) for test, value in tests)

        try:
            page = self.dataset.page(
                resource, limit=limit, starting_after=after, ending_before=before, match=match
            )
        except CursorMissing as missing:
            raise _missing(400, NOUN[resource], missing.object_id, _cursor_param(query)) from None
        data = page.data
        if resource == "charges" and "data.balance_transaction" in query.expand():
            data = [self._expand_balance_transaction(charge) for charge in data]
        return _list_body(f"/v1/{resource}", page, data)

    def _retrieve(self, resource: str, object_id: str, query: Query) -> Json:
        query.check({"expand"})
        obj = self.dataset.retrieve(resource, object_id)
        if obj is None:
            raise _missing(404, NOUN[resource], object_id, "id")
        if resource == "charges" and "balance_transaction" in query.expand():
            return self._expand_balance_transaction(obj)
        return obj

    def _lines(self, invoice_id: str, query: Query) -> Json:
        query.check({"limit", "starting_after", "ending_before", "expand"})
        limit, after, before = _paging(query)
        try:
            page = self.dataset.lines_page(
                invoice_id, limit=limit, starting_after=after, ending_before=before
            )
        except CursorMissing as missing:
            raise _missing(400, NOUN["lines"], missing.object_id, _cursor_param(query)) from None
        if page is None:
            raise _missing(404, NOUN["invoices"], invoice_id, "invoice")
        return _list_body(f"/v1/invoices/{invoice_id}/lines", page, page.data)

    def _expand_balance_transaction(self, charge: Json) -> Json:
        txn_id = charge.get("balance_transaction")
        txn = self.dataset.retrieve("balance_transactions", txn_id) if txn_id else None
        return {**charge, "balance_transaction": txn} if txn is not None else charge


def _list_body(url: str, page: Page, data: list[Json]) -> Json:
    return {"object": "list", "data": data, "has_more": page.has_more, "url": url}


def _paging(query: Query) -> tuple[int, str | None, str | None]:
    after = query.scalars.get("starting_after")
    before = query.scalars.get("ending_before")
    if after is not None and before is not None:
        raise invalid(
            "Received both starting_after and ending_before parameters. Please pass in only one."
        )
    return list_limit(query), after, before


def _cursor_param(query: Query) -> str:
    return "starting_after" if "starting_after" in query.scalars else "ending_before"


def _unrecognized(method: str, path: str, why: str = "") -> StripeError:
    note = f" ({why})" if why else ""
    return StripeError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({method}: {path}){note}. "
        "Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )


def _authenticate(authorization: str | None) -> None:
    """Stripe takes the key as a Bearer token, or as the user name of Basic auth."""
    key = ""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        key = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            key = base64.b64decode(credentials.strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if not key:
        raise _unauthorized(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY')."
        )
    if key.startswith("pk_"):
        raise _unauthorized(
            "This API call cannot be made with a publishable API key. Please use a secret "
            "API key. You can find a list of your API keys at "
            "https://dashboard.stripe.com/account/apikeys."
        )
    if not _KEY.fullmatch(key):
        shown = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}" if len(key) > 12 else key
        raise _unauthorized(f"Invalid API Key provided: {shown}")


def _unauthorized(message: str) -> StripeError:
    return StripeError(401, "invalid_request_error", message)
