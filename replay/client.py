"""Talking to the Stripe API: GET requests over one pooled HTTP/1.1 client, under our rate
limit and retries, answered as the raw JSON Stripe sent, read once with orjson.

stripe-python retries nothing unless asked, never retries a 429 and ignores Retry-After
(STRIPE-NOTES.md); and its `raw_request_async` parses every body with the standard json
module before handing it back (16 ms a page, most of a replay's time in a profile). So this
module speaks the wire itself: a pacer keeps us under the limit, a 429 waits for
Retry-After, 5xx and connection errors back off and retry, and pages come back as dicts
read from the body exactly as Stripe sent it, never as StripeObjects.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import stripe

from ledger.logs import get_logger

log = get_logger("replay")

_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# Loopback or the internet, answers arrive a few ms apart from when they left: counting our
# window a little longer than Stripe's one second keeps that jitter from costing a 429 (a
# 429's Retry-After is at least a whole second).
_WINDOW_MARGIN = 0.02


class StripeUnavailable(Exception):
    """Stripe kept failing after every retry; the message never holds the key."""


class StripeRefused(Exception):
    """Stripe refused the request (bad key, missing permission, bad parameter)."""


class StripeNotFound(StripeRefused):
    """The object is gone (a deleted draft invoice, say)."""


class StripeForbidden(StripeRefused):
    """A restricted key lacks a permission; `permission` is Stripe's name for it."""

    def __init__(self, path: str, permission: str | None) -> None:
        needed = f"the {permission} permission" if permission else "a read permission"
        super().__init__(f"{path}: the key lacks {needed}")
        self.permission = permission


@dataclass
class ApiStats:
    requests: int = 0
    rate_limited: int = 0
    retried: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


class Pacer:
    """At most `rate` requests in any window of one second (plus a margin), spread evenly
    (one every 1/rate s, no burst), so requests sent concurrently never exceed Stripe's
    sliding limit, and a benchmark's rate is the steady one."""

    def __init__(self, rate: float) -> None:
        self._rate = max(rate, 1.0)
        self._limit = max(int(self._rate), 1)
        self._sent: deque[float] = deque()
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:  # one waiter at a time: slots are handed out in order
            while True:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - 1.0 - _WINDOW_MARGIN:
                    self._sent.popleft()
                ready = self._next
                if len(self._sent) >= self._limit:
                    ready = max(ready, self._sent[0] + 1.0 + _WINDOW_MARGIN)
                if ready <= now:
                    break
                await asyncio.sleep(ready - now)
            self._sent.append(now)
            self._next = now + 1.0 / self._rate


class StripeApi:
    """GET requests to Stripe's v1 API as JSON dicts, paced and retried."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.stripe.com",
        requests_per_second: float = 20.0,
        attempts: int = len(_BACKOFF) + 1,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            headers={
                "Authorization": f"Bearer {api_key}",
                "Stripe-Version": stripe.api_version,
                "User-Agent": f"stripe-ledger (stripe-python/{stripe.VERSION} wire format)",
            },
            timeout=httpx.Timeout(80.0, connect=30.0),  # stripe-python's own timeout
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self._pacer = Pacer(requests_per_second)
        self._attempts = attempts
        self.api_version: str = stripe.api_version
        self.stats = ApiStats()

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        query = httpx.QueryParams(encode_params(params or {}))
        for attempt in range(self._attempts):
            delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
            await self._pacer.wait()
            self.stats.requests += 1
            self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
            try:
                response = await self._http.get(self._base + path, params=query)
            except httpx.TransportError:
                pass  # a connection error: back off and retry
            else:
                log.debug(
                    "Stripe API response",
                    path=path,
                    status=response.status_code,
                    request_id=response.headers.get("request-id"),
                )
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        document = orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        document = None  # a truncated answer: ask again
                    if isinstance(document, dict):
                        return document
                elif status == 429:
                    self.stats.rate_limited += 1
                    delay = _retry_after(response.headers) or delay
                elif status < 500:
                    raise _refusal(path, status, _message(response.content))
            self.stats.retried += 1
            log.info("stripe_retry", path=path, attempt=attempt + 1, delay=delay)
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
        raise StripeUnavailable(f"{path}: Stripe kept failing after {self._attempts} attempts")


def encode_params(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Stripe's form encoding of GET parameters: `created[gte]=...`, booleans as words."""
    encoded: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                add(f"{key}[{sub}]", inner)
        elif isinstance(value, list | tuple):
            for index, inner in enumerate(value):
                add(f"{key}[{index}]", inner)
        elif isinstance(value, bool):
            encoded.append((key, "true" if value else "false"))
        elif value is not None:
            encoded.append((key, str(value)))

    for key, value in params.items():
        add(key, value)
    return tuple(encoded)


def _message(body: bytes) -> str | None:
    """Stripe's `error.message`, if the body is an error in Stripe's shape."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


def _refusal(path: str, status: int, message: str | None) -> StripeRefused:
    if status == 401:
        return StripeRefused(
            f"{path}: {message or 'the key was refused'} (check "
            "STRIPE_API_KEY and, for a restricted key, its read permissions)"
        )
    if status == 403:
        # Stripe names the permission (and echoes part of the key: not repeated).
        found = re.search(r"rak_[a-z_]+", message or "")
        return StripeForbidden(path, found.group(0) if found else None)
    if status == 404:
        return StripeNotFound(f"{path}: no such object")
    return StripeRefused(f"{path}: {message or f'refused ({status})'}")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
